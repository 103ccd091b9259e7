"""Windows the chaos soak (`make soak`) aims at, pinned down with real FIFOs and processes.

A violation the soak finds lands here first, marked xfail(strict=True) until the server is
fixed, so the suite stays green and turns red the moment a fix lands without its mark removed.
The soak's gates keep its own clients out of the races docs/PROTOCOL.md names; these tests
open those windows on purpose and wide, with a log handler as slow as a real one can be.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from conftest import eventually, finish, peer
from pipe_io_server import PipeIOServer

# A writer in its own process: opens in_pipe, says so, then writes and closes when told.
WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
print("open", flush=True)
for part in sys.argv[2:]:
    sys.stdin.readline()
    os.write(fd, bytes.fromhex(part))
sys.stdin.readline()
"""


def writer(path: str, *parts: bytes) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, path, *(p.hex() for p in parts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "open\n"
    return process


def step(process: subprocess.Popen[str]) -> None:
    """Let the writer do its next write (or, after the last one, close and exit)."""
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()


def unread(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    finally:
        os.close(fd)


class HoldOnTailReport(logging.Handler):
    """A slow log handler: keeps the reader thread inside the report of a discarded tail."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.entered = threading.Event()
        self.go = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "unterminated tail" in str(record.msg) and not self.entered.is_set():
            self.entered.set()
            self.go.wait(10)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("leaves", ["before the reopen", "after the reopen"])
def test_tail_of_a_writer_that_opened_during_the_reopen_is_not_glued(
    tmp_path: Path, leaves: str
) -> None:
    """A writer opens in_pipe in the instant between end of file and the server's reopen.

    It must still get an end of file of its own, so its tail is dropped, not glued to the
    next writer's first message. The slow log handler holds that instant open.
    """
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    received: list[bytes] = []
    hold = HoldOnTailReport()
    logger = logging.getLogger("pipe_io_server")
    logger.addHandler(hold)
    server = PipeIOServer(in_pipe, out_pipe)
    server.handle_message = received.append  # type: ignore[method-assign]
    try:
        with server:
            first = writer(in_pipe, b"first tail")
            step(first)
            step(first)
            assert first.wait(10) == 0
            assert hold.entered.wait(10)  # end of file seen, the reopen not done yet
            second = writer(in_pipe, b"second tail")
            if leaves == "before the reopen":
                step(second)
                step(second)
                assert second.wait(10) == 0
                hold.go.set()
            else:
                hold.go.set()
                step(second)
                assert eventually(lambda: unread(in_pipe) == 0)
                step(second)
                assert second.wait(10) == 0
            third = writer(in_pipe, b"hello\n")
            step(third)
            step(third)
            assert third.wait(10) == 0
            assert eventually(lambda: received != [])
            assert received == [b"hello"]
            assert server.stats.tails_discarded == 2
    finally:
        hold.go.set()
        logger.removeHandler(hold)


@pytest.mark.timeout(30)
def test_messages_leave_in_the_order_send_message_accepted_them(tmp_path: Path) -> None:
    """A handler's reply and a message from another thread keep the order of their sends."""
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    server = PipeIOServer(in_pipe, out_pipe)

    def other_thread_sends() -> None:
        server.send_message(b"from another thread")

    def handle(message: bytes) -> None:
        server.send_message(b"reply to " + message)
        if message == b"first":
            # send_message above has returned: whatever is sent from now on comes after it.
            sender = threading.Thread(target=other_thread_sends)
            sender.start()
            sender.join(10)

    server.handle_message = handle  # type: ignore[method-assign]
    with server:
        reader = peer("lines", out_pipe, "3")
        # One write, so both messages arrive in one read and are dispatched together.
        finish(peer("send", in_pipe, b"first\nsecond\n".hex()))
        lines = [bytes.fromhex(line) for line in finish(reader).decode().split()]
    assert lines == [b"reply to first", b"from another thread", b"reply to second"]
