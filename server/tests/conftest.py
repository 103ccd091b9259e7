"""Real FIFOs and real processes: the fixtures every guarantee test starts from."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipe_io_server import PipeIOServer
from pipe_io_server.reader import Reader

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


class ServerProcess:
    """server_proc.py in a child process: a server whose fd limit and memory a test controls."""

    def __init__(self, in_pipe: str, out_pipe: str, mode: str, *extra: str) -> None:
        script = str(Path(__file__).with_name("server_proc.py"))
        self.process = subprocess.Popen(
            [sys.executable, script, in_pipe, out_pipe, mode, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.answer(20) == "ready", self.stderr()

    def answer(self, seconds: float = 10) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        assert ready, f"no answer within {seconds} s: {self.stderr()}"
        return self.process.stdout.readline().decode().strip()

    def ask(self, command: str, seconds: float = 10) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()
        return self.answer(seconds)

    def stderr(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> str:
        """End the process; return what it logged."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        return self.stderr()


def serve(tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`pipe-io-server serve` on tmp_path/in and tmp_path/out, its stderr captured."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipe_io_server",
            "serve",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            *extra,
        ],
        stderr=subprocess.PIPE,
    )


def connect(tmp_path: Path) -> RawClient:
    assert eventually(lambda: (tmp_path / "out").exists() and (tmp_path / "in").exists())
    return RawClient(str(tmp_path / "in"), str(tmp_path / "out"))


def flood(path: str, chunk: bytes, seconds: float) -> subprocess.Popen[bytes]:
    """A client writing `chunk` again and again for `seconds` (blocking while the pipe is full)."""
    code = (
        "import os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
        "end = time.monotonic() + float(sys.argv[3])\n"
        "chunk = bytes.fromhex(sys.argv[2])\n"
        "while time.monotonic() < end:\n"
        "    os.write(fd, chunk)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, path, chunk.hex(), str(seconds)])


def hit_and_run_at_the_next_reopen(reader: Reader) -> None:
    """The next time `reader` reopens in_pipe, a writer writes a tail and leaves in the instant
    between the server's decision to reopen and the new descriptor."""
    real_open = reader.fifo.open_read
    path = reader.fifo.path

    def open_after_a_hit_and_run_writer() -> int:
        reader.fifo.open_read = real_open  # type: ignore[method-assign]
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"tail without newline")
        os.close(fd)
        return real_open()

    reader.fifo.open_read = open_after_a_hit_and_run_writer  # type: ignore[method-assign]
