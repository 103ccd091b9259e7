"""Real FIFOs and real processes: the fixtures every guarantee test starts from."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipe_io_server import PipeIOServer

PEER = str(Path(__file__).with_name("peer.py"))


class EchoServer(PipeIOServer):
    def handle_message(self, message: bytes) -> None:
        self.send_message(message)


@pytest.fixture
def pipes(tmp_path: Path) -> tuple[str, str]:
    return str(tmp_path / "in"), str(tmp_path / "out")


@pytest.fixture
def echo(pipes: tuple[str, str]) -> Iterator[EchoServer]:
    with EchoServer(*pipes) as server:
        yield server


@pytest.fixture
def pull(pipes: tuple[str, str]) -> Iterator[PipeIOServer]:
    """A server that leaves handle_message alone: tests pull with recv_message()."""
    with PipeIOServer(*pipes) as server:
        yield server


def peer(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    """A client in its own process (see peer.py), so it can be killed for real."""
    return subprocess.Popen(
        [sys.executable, PEER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 20) -> bytes:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode(errors="replace")
    return out


def wait_ready(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == b"ready\n", (line, process.stderr.read() if process.stderr else b"")


class RawClient:
    """The simplest conforming client, in-process: open, write a line, read a line."""

    def __init__(self, in_pipe: str, out_pipe: str | None = None) -> None:
        self.w = os.open(in_pipe, os.O_WRONLY)
        self.r = os.open(out_pipe, os.O_RDONLY) if out_pipe else -1
        self.buffer = b""

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.w, view) :]

    def recv(self) -> bytes | None:
        while b"\n" not in self.buffer:
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def close(self) -> None:
        for fd in (self.w, self.r):
            if fd >= 0:
                os.close(fd)
        self.w = self.r = -1


def in_thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def eventually(condition: Any, seconds: float = 10) -> bool:
    """Poll a condition the server reaches on its own threads, with a bound."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def returns_within(function: Any, seconds: float) -> bool:
    """True if function() returned in time: how tests spot a hang without hanging."""
    thread = in_thread(function)
    thread.join(seconds)
    return not thread.is_alive()
