"""The recorder process seen from outside: its control socket, and what /proc shows of it.

The driver steers the recorder (soak/recorder.py) over a Unix socket and reads its fds,
threads and RSS from /proc, so the figures are the kernel's, not the server's own account.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipe_io_server.framing import MESSAGE_OVERHEAD

from .faces import FACES

MiB = 1024 * 1024


@dataclass
class Resources:
    base_fds: int = 0
    base_threads: int = 0
    base_rss: int = 0
    max_fds: int = 0
    max_threads: int = 0
    max_rss: int = 0
    base_live: int = 0
    max_live: int = 0
    samples: int = 0
    quiet_checks: int = 0
    quiet_rss: list[int] = field(default_factory=list)


class ServerProcess:
    """The recorder: the server under test in a process of its own, and its control socket."""

    def __init__(self, work: Path, args: argparse.Namespace, pgid: int) -> None:
        self.work = work
        self.in_pipe = str(work / "in")
        self.out_pipe = str(work / "out")
        control = str(work / "control")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "soak.recorder",
                "--in",
                self.in_pipe,
                "--out",
                self.out_pipe,
                "--control",
                control,
                "--dir",
                str(work),
                "--seed",
                str(args.seed),
                "--max-message-size",
                str(args.max_message_size),
                "--max-backlog",
                str(args.max_backlog),
                "--send-timeout",
                str(args.send_timeout),
                "--face",
                args.face,
            ],
            preexec_fn=functools.partial(os.setpgid, 0, pgid),  # noqa: PLW1509 (one thread)
            stderr=(work / "recorder.err").open("ab"),
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 20
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.socket.connect(control)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the recorder did not start: see recorder.err") from None
                time.sleep(0.02)
        self.socket.settimeout(30)
        self.stream = self.socket.makefile("rwb", buffering=0)

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self.stream.write(json.dumps({"op": op, **args}).encode() + b"\n")
        line = self.stream.readline()
        if not line:
            raise RuntimeError("the recorder died: see recorder.err")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def dump_stacks(self) -> None:
        """The server's thread stacks go to recorder.err: evidence for a hang."""
        with (self.work / "recorder.err").open("a") as err:
            err.write(f"--- stacks at {time.monotonic():.3f} ---\n")
        os.kill(self.pid, signal.SIGUSR1)
        time.sleep(0.2)

    # -- what /proc shows from outside ---------------------------------------------------

    def fds(self) -> list[str]:
        listing = []
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                listing.append(f"{name} -> {os.readlink(f'/proc/{self.pid}/fd/{name}')}")
        return listing

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> list[str]:
        names = []
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip())
        return names

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def write_ends(self) -> int:
        """How many write ends of named FIFOs (out_pipe, renewed or not) the server holds."""
        count = 0
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            fd = f"/proc/{self.pid}/fd/{name}"
            try:
                if not stat.S_ISFIFO(os.stat(fd).st_mode) or os.readlink(fd).startswith("pipe:"):
                    continue
                flags = Path(f"/proc/{self.pid}/fdinfo/{name}").read_text().split("flags:")[1]
            except (OSError, IndexError):
                continue
            count += int(flags.split()[0], 8) & os.O_ACCMODE == os.O_WRONLY
        return count

    def sample(self, res: Resources) -> None:
        with contextlib.suppress(OSError):
            fds, threads, rss = (
                self.fd_count(),
                len(os.listdir(f"/proc/{self.pid}/task")),
                self.rss(),
            )
            res.max_fds, res.max_threads = max(res.max_fds, fds), max(res.max_threads, threads)
            res.max_rss = max(res.max_rss, rss)
            res.samples += 1
            if res.samples % 3 == 0:
                res.max_live = max(res.max_live, self.ask("memory")["live"])


# What CPython needs to queue one message besides its payload: the bytes object's header,
# the one-item list send_message queues it in, a deque slot. Measured: 136 bytes for a
# 2-byte message, 88 for the empty message (a shared object), 7 for a large one.
HELD_BYTES = 136


def backlog_bound(max_backlog: int) -> int:
    """The memory a full backlog takes at worst. Every message is charged its payload plus
    MESSAGE_OVERHEAD, so it holds at most max_backlog / (s + 64) messages of s bytes, which
    take (s + HELD_BYTES) each: at most max_backlog x HELD_BYTES / 64, for empty messages."""
    return max_backlog * max(HELD_BYTES, MESSAGE_OVERHEAD) // MESSAGE_OVERHEAD


def live_bound(args: argparse.Namespace, base: int) -> int:
    """What the server may hold at worst: the bound its limits promise, plus small change.

    Inbound: the decoder's parts and their join (2 x max_message_size), the message the
    handler frames for its echo (1 x), and on a face that queues received messages for its
    handler, that queue (an inbox charged as the backlog is: backlog_bound, and the one
    message it takes beyond, when empty). Outbound: the backlog (backlog_bound), the large
    message being written into the pipe and the pipe's worth not yet read (1 x + 1 MiB).
    One more message for the instants a message exists twice (a join or a copy under
    way); the rest covers the messages of one 64 KiB read, pipe-sized read buffers and the
    recorder's own log buffers.
    """
    queues = FACES[args.face].queues
    return int(
        base
        + (4 + queues) * args.max_message_size
        + queues * backlog_bound(args.max_backlog)
        + 8 * MiB
    )


def rss_bound(args: argparse.Namespace, base: int, base_live: int) -> int:
    """RSS also counts what the C allocator keeps after a peak: glibc hands freed heap
    memory back lazily, per thread arena, and the reader, writer and a producer thread
    each allocate message buffers. So three times the live bound: still a bound a leak of
    messages would cross within minutes, not hours."""
    return int(base + 3 * (live_bound(args, base_live) - base_live))
