"""Guarantee 10 for every message size: limits count messages, and an idle server holds none.

The servers run in processes of their own (server_proc.py), so that their resident memory is
theirs alone.
"""

from __future__ import annotations

import time

import pytest
from conftest import RawClient, ServerProcess, flood
from pipe_io_server import BacklogFull, PipeIOServer, PipeWriterServer

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("message", "limit"), [(b"", 1024), (b"ab", 4 * MIB)], ids=["empty", "two-bytes"]
)
def test_a_flood_of_tiny_messages_stays_within_the_inbox_limit(
    pipes: tuple[str, str], message: bytes, limit: int
) -> None:
    server = ServerProcess(*pipes, "pull", str(limit))
    try:
        base = int(server.ask("rss").split()[0])
        writer = flood(pipes[0], (message + b"\n") * 4096, 3)
        time.sleep(3)  # nobody pulls: the inbox fills, then the pipe pushes back
        writer.kill()
        writer.wait(10)
        peak = int(server.ask("rss").split()[1])
    finally:
        server.close()
    # Without per-message accounting this grows by tens of MiB in three seconds.
    growth = (peak - base) * 1024
    assert growth < 2 * limit + 12 * MIB, f"resident memory grew by {growth / MIB:.0f} MiB"


@pytest.mark.parametrize("message", [b"", b"xy"], ids=["empty", "two-bytes"])
def test_tiny_messages_fill_the_outbound_backlog(pipes: tuple[str, str], message: bytes) -> None:
    with PipeWriterServer(pipes[1], max_backlog=64 * 1024, send_timeout=0) as server:
        with pytest.raises(BacklogFull):
            for _ in range(100_000):  # 64 KiB of payload would be 32,768 messages of 2 bytes
                server.send_message(message)
        assert server.stats.sent < 64 * 1024 // 16


def test_tiny_replies_batched_in_one_read_fill_the_backlog_too(pipes: tuple[str, str]) -> None:
    """The batch a dispatch collects is charged per message as well."""
    refused = []

    class Replier(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            try:
                self.send_message(b"")
            except BacklogFull:
                refused.append(message)

    with Replier(*pipes, max_backlog=4096, send_timeout=0) as server:
        client = RawClient(server.in_pipe)
        client.send(b"\n" * 5000)
        client.close()
        deadline = time.monotonic() + 20
        while server.stats.received < 5000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.stats.received == 5000
        assert refused, "5000 replies with no reader were all accepted under a 4 KiB limit"


@pytest.mark.parametrize(("size", "count"), [(64 * MIB, 4), (8 * MIB, 12)], ids=["64MiB", "8MiB"])
def test_an_idle_server_gives_back_the_memory_of_large_messages(
    pipes: tuple[str, str], size: int, count: int
) -> None:
    """64 MiB messages are each mapped by glibc on its own; 8 MiB ones are heap blocks that
    glibc would keep after they are freed, unless the server gives them back."""
    server = ServerProcess(*pipes, "echo")
    try:
        base = int(server.ask("rss").split()[0])
        client = RawClient(*pipes)
        message = b"m" * size
        for _ in range(count):
            client.send(message + b"\n")
            assert client.recv() == message
        del message
        time.sleep(1.5)  # quiet: no message in flight, none coming
        idle = int(server.ask("rss").split()[0])
        client.close()
    finally:
        server.close()
    assert (idle - base) / 1024 < 4, f"idle RSS is {(idle - base) / 1024:.0f} MiB over baseline"
