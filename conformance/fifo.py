"""Raw ends of a FIFO with deadlines: the runner never blocks without a time limit.

A client's open of in_pipe is non-blocking and made once: ENXIO (no reader) is what a
client would meet, so it is reported, never retried; only the wait for a server that is
still starting retries. Every read or write waits in poll() first, and reads never take
more bytes out of the pipe than the step asked for, so a server's count of unread bytes
sees exactly what the scenario says the reader took. A reader that opened before any
writer does not see a false end of file: Linux reports POLLHUP only for writers that came
and went after the open.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import threading
import time

CHUNK = 1 << 20


class Timeout(Exception):
    """A deadline passed while waiting on a FIFO."""


class NoWriter(Timeout):
    """A blocking open for reading would still be waiting: nobody opened the other end."""


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout
    return left


def wait_for_fifo(path: str, deadline: float) -> None:
    while True:
        try:
            if stat.S_ISFIFO(os.lstat(path).st_mode):
                return
        except FileNotFoundError:
            pass
        remaining(deadline)
        time.sleep(0.01)


def open_reader(path: str, deadline: float) -> Reader:
    wait_for_fifo(path, deadline)
    return Reader(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW), path)


def open_reader_like_a_client(path: str, deadline: float) -> Reader:
    """Open as a plain client does, blocking until a writer has the FIFO open.

    The open runs in a thread; past the deadline the runner opens the write end itself to
    release it, and reports NoWriter.
    """
    wait_for_fifo(path, deadline)
    opened: list[int] = []
    failed: list[OSError] = []

    def opener() -> None:
        try:
            opened.append(os.open(path, os.O_RDONLY | os.O_NOFOLLOW))
        except OSError as error:
            failed.append(error)

    thread = threading.Thread(target=opener, name=f"open {path}", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        try:
            release = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            raise NoWriter from None  # the path went away: the thread is left blocked
        thread.join(1.0)
        os.close(release)
        for fd in opened:
            os.close(fd)
        raise NoWriter
    if failed:
        raise failed[0]
    os.set_blocking(opened[0], False)
    return Reader(opened[0], path)


def open_writer(path: str) -> Writer:
    """Open once, as a client: OSError ENXIO when nobody holds the read end."""
    return Writer(os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW), path)


def open_writer_waiting(path: str, deadline: float) -> Writer:
    """Retried while nobody holds the read end (ENXIO) or the FIFO does not exist yet.

    Only for waits a blocking open would make: a server waiting for a client's read end, or
    the runner waiting for a server that is still starting.
    """
    while True:
        try:
            return open_writer(path)
        except OSError as error:
            if error.errno not in (errno.ENXIO, errno.ENOENT):
                raise
        remaining(deadline)
        time.sleep(0.005)


def open_reader_nonblocking(path: str) -> Reader:
    """Open without waiting, then read at once: end of file there means no writer held it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        first = os.read(fd, 1)
    except BlockingIOError:
        first = b""
    else:
        if not first:
            os.close(fd)
            raise NoWriter
    reader = Reader(fd, path)
    reader.buffer += first
    return reader


def _wait(fd: int, events: int, deadline: float) -> None:
    poller = select.poll()
    poller.register(fd, events)
    while not poller.poll(max(1, int(remaining(deadline) * 1000))):
        pass


class Reader:
    """Reads messages (up to a newline) or raw bytes; keeps what it read ahead."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd: int | None = fd
        self.path = path
        self.buffer = bytearray()
        self.eof = False
        self._scanned = 0

    def _fill(self, deadline: float, size: int = CHUNK) -> None:
        assert self.fd is not None, "reader is closed"
        _wait(self.fd, select.POLLIN, deadline)
        try:
            data = os.read(self.fd, size)
        except BlockingIOError:
            return
        if data:
            self.buffer += data
        else:
            self.eof = True

    def message(self, deadline: float, limit: int | None = None) -> bytes | None:
        """The next message without its newline, or None at end of file.

        With a limit, no more than `limit` bytes are taken out of the pipe: when they hold no
        newline, they are returned as they are (a caller expecting `limit - 1` bytes and a
        newline then sees that the message differs).
        """
        while True:
            end = self.buffer.find(b"\n", self._scanned)
            if end >= 0:
                message = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                self._scanned = 0
                return message
            self._scanned = len(self.buffer)
            if limit is not None and len(self.buffer) >= limit:
                message = bytes(self.buffer)
                self.buffer.clear()
                self._scanned = 0
                return message
            if self.eof:
                return None
            self._fill(deadline, CHUNK if limit is None else min(CHUNK, limit - len(self.buffer)))

    def read(self, size: int, deadline: float) -> bytes:
        """Exactly `size` raw bytes (fewer only at end of file), never more from the pipe."""
        while len(self.buffer) < size and not self.eof:
            self._fill(deadline, min(CHUNK, size - len(self.buffer)))
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        self._scanned = 0
        return data

    def rest(self, deadline: float) -> bytes:
        """Everything up to end of file."""
        while not self.eof:
            self._fill(deadline)
        data = bytes(self.buffer)
        self.buffer.clear()
        self._scanned = 0
        return data

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Writer:
    def __init__(self, fd: int, path: str) -> None:
        self.fd: int | None = fd
        self.path = path

    def write(self, data: bytes, deadline: float) -> None:
        """All of `data`; a piece of at most PIPE_BUF bytes goes in one write (atomic)."""
        assert self.fd is not None, "writer is closed"
        view = memoryview(data)
        while view:
            _wait(self.fd, select.POLLOUT, deadline)
            try:
                view = view[os.write(self.fd, view[:CHUNK]) :]
            except BlockingIOError:
                continue

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
