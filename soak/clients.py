"""Client behaviours, each run in a process forked from the driver.

What a client did is recorded so that a SIGKILL at any instant leaves an exact or a
one-message-uncertain record:
- a writer appends `I` (about to write message SEQ) before and `D` (written whole) after
  each message, so at most its last message is uncertain;
- a reader reads straight into a shared file mapping, so every byte it took out of the
  pipe is in the file even if it dies the next instant; its last read lies between the
  committed offset and committed + requested, and what follows is still zeros.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import mmap
import os
import random
import select
import signal
import stat
import struct
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn

from . import stall, wire

PR_SET_PDEATHSIG = 1
HEADER = 32  # reader buffer: committed offset, requested size, FIFO inode, open time
Spec = dict[str, Any]


class Stale(Exception):
    """No server holds the FIFO this client has open: it stopped, and no write will come."""


class WriterLog:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def note(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")


class ReadBuffer:
    def __init__(self, path: Path, capacity: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.ftruncate(fd, HEADER + capacity)
        self.map = mmap.mmap(fd, HEADER + capacity, mmap.MAP_SHARED)
        os.close(fd)
        self.view = memoryview(self.map)
        self.offset = HEADER
        self.end = HEADER + capacity

    def opened(self, ino: int) -> None:
        struct.pack_into("<Qd", self.map, 16, ino, time.monotonic())

    @property
    def room(self) -> int:
        return self.end - self.offset

    def read(self, fd: int, size: int) -> int:
        size = min(size, self.room)
        struct.pack_into("<Q", self.map, 8, size)
        count = os.readv(fd, [self.view[self.offset : self.offset + size]])
        self.offset += count
        struct.pack_into("<Q", self.map, 0, self.offset - HEADER)
        return count

    def find(self, needle: bytes, start: int) -> int:
        """Where needle starts in what was read from `start` on (-1 if absent)."""
        return self.map.find(needle, max(HEADER, start - len(needle)), self.offset)


def _check_fifo(fd: int, path: str) -> int:
    info = os.fstat(fd)
    if not stat.S_ISFIFO(info.st_mode):
        os.close(fd)
        raise RuntimeError(f"{path} is not a FIFO")
    return info.st_ino


def _orphaned(server: int, fifo: os.stat_result) -> bool:
    """The server process holds no descriptor of this FIFO.

    The path says nothing: a managed out_pipe is renewed for every reader, so the FIFO in
    session is no longer the one at the path. A server holds the FIFO at the path (to open
    it when a reader comes) and the one it writes, until it stops.
    """
    try:
        names = os.listdir(f"/proc/{server}/fd")
    except FileNotFoundError:
        return True
    for name in names:
        try:
            held = os.stat(f"/proc/{server}/fd/{name}")
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (fifo.st_dev, fifo.st_ino):
            return False
    return True


def open_fifo(path: str, flags: int, blocking: bool, deadline: float) -> tuple[int, int] | None:
    """Open for a session; between a restart's stop and start the path is missing: retry."""
    while time.monotonic() < deadline:
        try:
            if blocking:
                fd = os.open(path, flags | os.O_CLOEXEC)
            else:
                fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
                if flags & os.O_WRONLY:
                    os.set_blocking(fd, True)
            return fd, _check_fifo(fd, path)
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENXIO):
                raise
            time.sleep(0.01)
    return None


# -- writers ---------------------------------------------------------------------------------


class Writer:
    """One writer's session on in_pipe: every message framed, logged before and after."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.wid: int = spec["wid"]
        self.tag = f"w{self.wid}"
        self.rng = random.Random(f"{spec['seed']}:writer:{self.wid}")
        self.log = WriterLog(Path(spec["dir"]) / f"w{self.wid}.log")
        self.seq = 0
        self.fd = -1

    def open(self) -> bool:
        opened = open_fifo(
            self.spec["in"], os.O_WRONLY, self.spec["blocking_open"], self.spec["deadline"]
        )
        if opened is None:
            self.log.note("X noopen")
            return False
        self.fd, ino = opened
        self.log.note(f"O {ino} {time.monotonic():.6f}")
        return True

    def message(self, size: int) -> bytes:
        message, crc = wire.frame(self.tag, self.seq, wire.body(self.rng, size))
        self.log.note(f"I {self.seq} {size} {crc} {len(message)} {time.monotonic():.6f}")
        return message + wire.NEWLINE

    def send(self, size: int, pieces: int = 1, pause: float = 0.0) -> bool:
        """Write one message in `pieces` write() calls; False once the server is gone."""
        data = memoryview(self.message(size))
        cuts = sorted(self.rng.randrange(1, len(data)) for _ in range(pieces - 1))
        try:
            start = 0
            for end in [*cuts, len(data)]:
                while start < end:
                    start += os.write(self.fd, data[start:end])
                if pause and end < len(data):
                    time.sleep(pause)
        except BrokenPipeError:
            self.log.note("X epipe")
            return False
        self.log.note(f"D {self.seq} {time.monotonic():.6f}")
        self.seq += 1
        return True

    def small_size(self) -> int:
        room = wire.PIPE_BUF - 1 - wire.header_size(self.tag, self.seq, 4096)
        return min(room, int(self.rng.paretovariate(1.2) * 40) - 40)

    def close(self) -> None:
        os.close(self.fd)
        self.log.note("C")


def small_writer(spec: Spec) -> None:
    """Concurrent writers: messages of at most PIPE_BUF bytes, one write() each."""
    writer = Writer(spec)
    if not writer.open():
        return
    rng = writer.rng
    for _ in range(rng.randint(1, spec["count"])):
        if not writer.send(writer.small_size()):
            return
        if rng.random() < 0.05:
            time.sleep(rng.uniform(0, 0.3))  # a pause mid-session
    writer.close()


def anonymous_writer(spec: Spec) -> None:
    """Alongside other writers: a flood of empty or 1-2 byte messages, PIPE_BUF bytes per
    write(), so that each batch arrives whole or not at all, never split by another writer."""
    writer = Writer(spec)
    if not writer.open():
        return
    kind, total = spec["anonymous"], spec["count"]
    first = 0
    while first < total:
        data, count = wire.anonymous_batch(kind, first, total - first, wire.PIPE_BUF)
        writer.log.note(f"F {first} {count} {kind}")
        try:
            written = os.write(writer.fd, data)
        except BrokenPipeError:
            writer.log.note("X epipe")
            return
        if written != len(data):
            raise RuntimeError(f"a write of {len(data)} bytes took {written}: not atomic")
        writer.log.note(f"G {first} {time.monotonic():.6f}")
        first += count
    writer.close()


def big_writer(spec: Spec) -> None:
    """Alone on in_pipe: large messages in one or many writes, some over max_message_size."""
    writer = Writer(spec)
    if not writer.open() or not writer.send(writer.small_size()):
        return
    rng = writer.rng
    limit = spec["max_message_size"]
    for _ in range(rng.randint(1, spec["count"])):
        roll = rng.random()
        if roll < 0.15:
            size = rng.randint(limit + 1, limit + limit // 2)  # oversized: to be discarded
        elif roll < 0.5:
            size = rng.randint(limit // 4, limit - 100)
        else:
            size = int(rng.paretovariate(0.8) * 1000)
            size = min(size, limit - 100)
        pieces = 1 if rng.random() < 0.5 else rng.randint(2, 20)
        if not writer.send(size, pieces, rng.uniform(0, 0.05)):
            return
    if spec.get("tail"):
        # Close in the middle of a message: the server must drop the tail, never glue it.
        data = writer.message(rng.randint(1, 100_000))
        cut = rng.randrange(1, len(data) - 1)
        try:
            os.write(writer.fd, data[:cut])
        except BrokenPipeError:
            return
        writer.log.note(f"T {writer.seq} {cut}")
    writer.close()


def endless_line(spec: Spec) -> None:
    """Alone on in_pipe: a line far longer than max_message_size, then maybe a real message."""
    writer = Writer(spec)
    if not writer.open() or not writer.send(writer.small_size()):
        return
    rng = writer.rng
    length = rng.randint(spec["max_message_size"] * 2, spec["max_message_size"] * 4)
    chunk = wire.body(rng, 1 << 20)
    writer.log.note(f"L {length}")
    written = 0
    try:
        while written < length:
            written += os.write(writer.fd, chunk[: length - written])
        if rng.random() < 0.5:
            os.write(writer.fd, wire.NEWLINE)
            writer.log.note("N")
            if not writer.send(writer.small_size()):
                return
    except BrokenPipeError:
        return
    writer.close()


def in_loop(spec: Spec) -> None:
    """Open and close in_pipe as fast as possible, writing nothing."""
    _open_close_loop(spec, spec["in"], os.O_WRONLY)


def out_loop(spec: Spec) -> None:
    """Open and close out_pipe as fast as possible, reading nothing."""
    _open_close_loop(spec, spec["out"], os.O_RDONLY)


def _open_close_loop(spec: Spec, path: str, flags: int) -> None:
    until = time.monotonic() + spec["seconds"]
    opens = failures = 0
    while time.monotonic() < until:
        try:
            os.close(os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC))
            opens += 1
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENXIO):
                raise
            failures += 1
    _result(spec, {"opens": opens, "failures": failures, "seconds": spec["seconds"]})


# -- readers ---------------------------------------------------------------------------------


class Reader:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec['seed']}:reader:{spec['rid']}")
        self.buffer = ReadBuffer(Path(spec["dir"]) / f"r{spec['rid']}.buf", spec["capacity"])
        self.fd = -1
        self.ino = 0

    def open(self) -> bool:
        opened = open_fifo(
            self.spec["out"], os.O_RDONLY, self.spec["blocking_open"], self.spec["deadline"]
        )
        if opened is None:
            return False
        self.fd, self.ino = opened
        self.fifo = os.fstat(self.fd)
        os.set_blocking(self.fd, False)
        self.buffer.opened(self.ino)
        return True

    def read(self, size: int, until: float | None = None) -> int:
        """Bytes read; 0 at end of file, when the buffer is full, or when nothing came
        until `until` (or the client's deadline). Raises Stale."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        end = self.spec["deadline"] if until is None else min(until, self.spec["deadline"])
        while True:
            wait = min(500, max(0, int((end - time.monotonic()) * 1000)))
            if not poller.poll(wait):
                if time.monotonic() > end:
                    return 0
                if _orphaned(self.spec["server_pid"], self.fifo):
                    raise Stale
                continue
            try:
                return self.buffer.read(self.fd, size)
            except BlockingIOError:
                continue

    def chunk(self) -> int:
        return self.rng.choice((1, 7, 100, 4096, 65536, 1 << 20, self.rng.randint(1, 300_000)))

    def close(self) -> None:
        os.close(self.fd)


def reader(spec: Spec) -> None:
    """Read for a while, in chunks of random sizes; `want` bytes at most (then close)."""
    client = Reader(spec)
    if not client.open():
        return
    _read_some(client, spec["seconds"], spec["want"], spec["pause"])
    client.close()


def turns(spec: Spec) -> None:
    """Readers one after another, as a client that reconnects at once: each session reads a
    random amount (most often stopping in the middle of a message) and closes, and the next
    one opens 0-5 ms later, before the server may have seen the previous one leave."""
    rng = random.Random(f"{spec['seed']}:turns:{spec['rid']}")
    for turn in range(spec["turns"]):
        client = Reader({**spec, "rid": f"{spec['rid']}.{turn}"})
        if not client.open():
            return
        want = rng.choice((1, 100, 5_000, 70_000, 1 << 20))
        _read_some(client, rng.uniform(0.005, 0.3), want, 0)
        client.close()
        time.sleep(rng.uniform(0, 0.005))


def _read_some(client: Reader, seconds: float, want: int, pause: float) -> None:
    until = time.monotonic() + seconds
    taken = 0
    with contextlib.suppress(Stale):
        while time.monotonic() < until and taken < want:
            count = client.read(min(client.chunk(), want - taken), until)
            if not count:
                break
            taken += count
            if pause:
                time.sleep(client.rng.uniform(0, pause))


def drain(spec: Spec) -> None:
    """Read until the message that ends with `needle` has been read whole."""
    client = Reader(spec)
    if not client.open():
        return
    needle = spec["needle"].encode()
    found = -1
    with contextlib.suppress(Stale):
        while found < 0:
            start = client.buffer.offset
            if not client.read(1 << 20):
                break
            found = client.buffer.find(needle, start)
        # Read on to the newline that ends the target message.
        while found >= 0 and client.buffer.map.find(b"\n", found, client.buffer.offset) < 0:
            if not client.read(1 << 20):
                break
    client.close()


def session(spec: Spec) -> None:
    """Both pipes, opened in random order: send small messages, read until their echoes came."""
    writer = Writer(spec)
    client = Reader(spec)
    first_in = writer.rng.random() < 0.5
    if first_in and not writer.open():
        return
    if not client.open():
        return
    if not first_in and not writer.open():
        return
    count = writer.rng.randint(1, spec["count"])
    for _ in range(count):
        if not writer.send(writer.small_size()):
            break
        # Read what is waiting now and then, as an interactive client does.
        if writer.rng.random() < 0.3:
            with contextlib.suppress(BlockingIOError):
                client.buffer.read(client.fd, 1 << 16)
    last = writer.seq - 1
    writer.close()
    if last < 0:
        client.close()
        return
    needle = b":w%d:%d:" % (writer.wid, last)
    scanned = HEADER
    with contextlib.suppress(Stale):
        while client.buffer.find(needle, scanned) < 0:
            scanned = client.buffer.offset
            if not client.read(1 << 18):
                break
    client.close()


BEHAVIOURS: dict[str, Callable[[Spec], None]] = {
    "small_writer": small_writer,
    "anonymous_writer": anonymous_writer,
    "big_writer": big_writer,
    "endless_line": endless_line,
    "in_loop": in_loop,
    "out_loop": out_loop,
    "reader": reader,
    "turns": turns,
    "stall": stall.episode,
    "drain": drain,
    "session": session,
}


def _result(spec: Spec, result: dict[str, Any]) -> None:
    (Path(spec["dir"]) / f"c{spec['cid']}.json").write_text(json.dumps(result))


def die_with_parent() -> None:
    """No client, server or anchor outlives the driver, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run(spec: Spec) -> NoReturn:
    """The body of a forked child: bounded by an alarm, dies with the driver."""
    code = 0
    try:
        for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            signal.signal(signum, signal.SIG_DFL)
        signal.alarm(max(1, int(spec["deadline"] - time.monotonic()) + 2))
        die_with_parent()
        BEHAVIOURS[spec["kind"]](spec)
    except BaseException:
        (Path(spec["dir"]) / f"c{spec['cid']}.err").write_text(traceback.format_exc())
        code = 1
    os._exit(code)
