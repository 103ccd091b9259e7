"""Guarantee 6 when readers take turns: each message reaches exactly one reader, whole, in order.

Readers open out_pipe one after another (never two at once), read part of what waits, and
leave, as a plugin restarted in a loop does; meanwhile threads keep sending.
"""

from __future__ import annotations

import logging
import os
import random
import select
import threading
import time
import zlib

import pytest
from pipe_io_server import BacklogFull, PipeIOServer, PipeWriterServer

SENDERS = 8
MAX_BACKLOG = 2 * 1024 * 1024


def tagged(sender: int, seq: int, rng: random.Random) -> bytes:
    body = b"%x" % rng.getrandbits(8 * rng.choice((1, 8, 40, 300)))
    return b"%d:%d:%d:%s" % (sender, seq, zlib.crc32(body), body)


def check(line: bytes) -> tuple[int, int]:
    fields = line.split(b":", 3)
    assert len(fields) == 4 and fields[2].isdigit(), f"fragment {line[:80]!r}"
    sender, seq, crc, body = fields
    assert zlib.crc32(body) == int(crc), f"garbled message {line[:80]!r}"
    return int(sender), int(seq)


def take_turns(server: PipeWriterServer, seconds: float, pause: float, seed: int) -> None:
    rng = random.Random(seed)
    sent = [0] * SENDERS
    stop_sending = threading.Event()

    def sender(number: int) -> None:
        own = random.Random(seed * 100 + number)
        while not stop_sending.is_set():
            try:
                server.send_message(tagged(number, sent[number], own))
            except BacklogFull:
                continue  # the readers are behind: try the same message again
            sent[number] += 1
            if sent[number] % 64 == 0:
                time.sleep(0.0005)

    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    received: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            fd = os.open(server.out_pipe, os.O_RDONLY)
            want, data = rng.choice((1, 7, 100, 5000, 70_000, 300_000)), b""
            while len(data) < want and (chunk := os.read(fd, min(want - len(data), 65536))):
                data += chunk
            os.close(fd)
            received.extend(data.split(b"\n")[:-1])  # a trailing fragment is not a message
            time.sleep(pause)
    finally:
        stop_sending.set()
        for thread in threads:
            thread.join(10)
    received.extend(read_the_rest(server))
    seen: dict[int, int] = {}
    for line in received:
        sender_, seq = check(line)
        expected = seen.get(sender_, -1) + 1
        assert seq == expected, f"sender {sender_}: got {seq} after {expected - 1}"
        seen[sender_] = seq
    assert [seen.get(n, -1) + 1 for n in range(SENDERS)] == sent, "messages missing at the end"


def read_the_rest(server: PipeWriterServer) -> list[bytes]:
    """The last reader stays until everything sent is in the pipe and read."""
    fd = os.open(server.out_pipe, os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.3 or not server.flush(0):
            assert time.monotonic() - quiet_since < 20, "the rest never came"
            if select.select([fd], [], [], 0.05)[0] and (chunk := os.read(fd, 1 << 20)):
                data += chunk
                quiet_since = time.monotonic()
    finally:
        os.close(fd)
    assert data.endswith(b"\n") or not data
    return data.split(b"\n")[:-1]


@pytest.mark.parametrize("pause", [0.0, 0.003, 0.02])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_readers_taking_turns_get_every_message_once_whole_in_order(
    pipes: tuple[str, str], pause: float, seed: int
) -> None:
    with PipeWriterServer(pipes[1], max_backlog=MAX_BACKLOG, send_timeout=0.05) as server:
        take_turns(server, 2.0, pause, seed)
        assert server.stats.redelivered > 0  # readers did leave mid-stream


def test_unmanaged_pipes_keep_the_guarantee_for_readers_that_pause(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "out")
    os.mkfifo(path, 0o600)
    with PipeWriterServer(
        path, manage_pipes=False, max_backlog=MAX_BACKLOG, send_timeout=0.05
    ) as server:
        take_turns(server, 2.0, 0.2, 4)


def test_no_takeover_warning_when_the_reader_leaves_and_the_server_stops(
    pipes: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipe_io_server")
    for round_ in range(300):
        server = PipeIOServer(*pipes)
        server.handle_message = server.send_message  # type: ignore[method-assign]
        server.start()
        for i in range(50):
            server.send_message(b"%d %d" % (round_, i))
        fd = os.open(server.out_pipe, os.O_RDONLY)
        data = b""
        while data.count(b"\n") < 50:
            data += os.read(fd, 65536)
        os.close(fd)
        server.stop()
    assert "took over" not in caplog.text
