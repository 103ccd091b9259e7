"""The out_pipe side: a thread that waits for readers and writes the backlog to them.

The server never holds a read end of out_pipe. So when the reader leaves, the pipe's
unread bytes are ours to count (FIONREAD) and to discard with the pipe, and every
message the reader did not take whole is written again to the next reader.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import struct
import sys
import termios
import threading
import time
from collections import deque

from .backlog import Backlog, BacklogFull
from .fifo import F_GETPIPE_SZ, PIPE_SIZE, Fifo
from .stats import Stats

log = logging.getLogger("pipe_io_server")

# A batch of sends goes to the backlog at the latest when it holds this much.
BATCH_FLUSH_BYTES = 256 * 1024
# Below this many bytes held for redelivery, prune() leaves the bookkeeping to the next write.
PRUNE_BYTES = 256 * 1024
# A larger message is left to the writer thread, so that the caller (often the reader thread)
# goes back to reading while it is written: on a pipe the two copies then overlap.
DIRECT_WRITE_BYTES = 64 * 1024
_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL
_get_ident = threading.get_ident  # a global, not a module attribute: looked up per send


def _drain(batch: deque[bytes]) -> list[bytes]:
    """Take every message from a deque its owner may still be appending to."""
    taken = []
    with contextlib.suppress(IndexError):
        while True:
            taken.append(batch.popleft())
    return taken


def _has_reader(fd: int) -> bool:
    probe = select.poll()
    probe.register(fd, 0)
    return not probe.poll(0)


def _unread(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


class Writer:
    def __init__(
        self, path: str, stats: Stats, max_backlog: int | None, send_timeout: float | None
    ) -> None:
        self.path = path
        self._stats = stats
        self._max_backlog = max_backlog
        self._send_timeout = send_timeout
        self._backlog = Backlog()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # backlog shrank, or stopping
        self._waiters = 0  # threads in _wait_for_change()
        self._fifo: Fifo | None = None
        self._fd = -1
        self._capacity = 0
        self._gone = False
        self._idle = False
        # While the reader thread dispatches the messages of one read, its sends collect here,
        # without the lock, and reach the backlog together: one lock and one write per batch.
        # A deque, whose append and popleft are atomic, so that another thread's send can move
        # the batch ahead of its own message without the owner taking a lock per message.
        self._batch_owner: int | None = None
        self._batch: deque[bytes] = deque()
        self._batch_bytes = 0  # the owner's running estimate; only it resets the count
        # What the batch may hold before max_backlog is reached, read once per batch instead of
        # once per message; -1 once stopping, so that every send takes the checked path.
        self._batch_room = -1
        self._stopping = False
        self._wake_r = self._wake_w = -1
        self.thread = threading.Thread(target=self._run, name="pipe_io_server writer", daemon=True)

    def start(self, fifo: Fifo) -> None:
        self._fifo = fifo
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.thread.start()

    def send(self, message: bytes) -> None:
        if self._batch_owner == _get_ident():
            size = self._batch_bytes + len(message)
            if size <= self._batch_room:
                self._batch.append(message)
                self._batch_bytes = size
                if size >= BATCH_FLUSH_BYTES:
                    self._release_batch()
                return
            self._release_batch()
        with self._lock:
            limit = self._max_backlog
            if limit is not None and self._backlog.waiting_bytes + len(message) > limit:
                self._wait_for_room(len(message), limit)
            if self._stopping:
                raise RuntimeError("the server is stopped: message not sent")
            if self._batch:
                # Replies batched before this send was called must leave before it.
                self._push_batch(_drain(self._batch))
            self._backlog.push(message)
            self._stats.sent += 1
            # Write at once from the caller: one thread hop less on every round trip.
            if self._fd < 0 or len(message) >= DIRECT_WRITE_BYTES or self._flush():
                self._wake()

    def _wait_for_room(self, size: int, limit: int) -> None:
        deadline = None if self._send_timeout is None else time.monotonic() + self._send_timeout
        while (
            not self._stopping
            and self._backlog.waiting_bytes
            and self._backlog.waiting_bytes + size > limit
        ):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise BacklogFull(
                    f"outbound backlog stayed above {limit} bytes for {self._send_timeout} s: "
                    f"no reader is taking messages from {self.path}"
                )
            self._wait_for_change(remaining)

    def _wait_for_change(self, timeout: float | None) -> None:
        """Wait on _changed, counted, so that a write notifies only when someone waits."""
        self._waiters += 1
        try:
            self._changed.wait(timeout)
        finally:
            self._waiters -= 1

    def cork(self) -> None:
        """Collect this thread's sends until uncork() (the reader dispatches a batch)."""
        self._batch_room = self._room()
        self._batch_owner = _get_ident()

    def uncork(self) -> None:
        self._batch_owner = None
        self._release_batch()

    def _room(self) -> int:
        if self._stopping:
            return -1
        limit = self._max_backlog
        return sys.maxsize if limit is None else limit - self._backlog.waiting_bytes

    def _release_batch(self) -> None:
        self._batch_bytes = 0
        with self._lock:
            batch, self._batch = self._batch, deque()
            self._push_batch(list(batch))
            self._batch_room = self._room()
            if self._flush() if self._fd >= 0 else self._backlog.pending:
                self._wake()

    def _push_batch(self, batch: list[bytes]) -> None:
        if self._stopping:
            self._stats.dropped_at_stop += len(batch)
        elif batch:
            self._backlog.push_many(batch, sum(map(len, batch)))
            self._stats.sent += len(batch)

    def prune(self) -> None:
        """Forget the large messages a reader has already taken, without waiting to write."""
        if self._backlog.reclaimable >= PRUNE_BYTES:
            with self._lock:
                if self._fd >= 0:
                    self._backlog.acknowledge(_unread(self._fd))

    def flush(self, timeout: float | None) -> bool:
        """Wait until every queued byte is in the pipe; False if the timeout came first."""
        if self._batch_owner == _get_ident():
            self._release_batch()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._backlog.pending and not self._stopping:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wait_for_change(remaining)
            return not self._backlog.pending

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._batch_room = -1
            self._changed.notify_all()
            if self._wake_w >= 0:
                # Unconditionally: the thread may be waiting for POLLOUT on a full pipe.
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"!")

    def unblock_open(self) -> int:
        """Meet a writer thread blocked in open(); the caller closes the returned descriptor."""
        assert self._fifo is not None
        return self._fifo.open_read()

    def _wake(self) -> None:
        if self._idle:
            self._idle = False
            os.write(self._wake_w, b"!")

    def _flush(self) -> bool:
        """Write what the pipe takes now; call with the lock held and a reader connected.

        Returns True when bytes are left for the writer thread (a full pipe, a reader gone).
        """
        backlog = self._backlog
        before = backlog.waiting_bytes
        buffers = backlog.buffers()
        while buffers and not self._gone:
            try:
                count = os.writev(self._fd, buffers)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self._gone = True
                break
            backlog.sent(count)
            if backlog.reclaimable > self._capacity:
                # Bounds the memory held for redelivery to about one pipe's worth.
                backlog.acknowledge(_unread(self._fd))
            buffers = backlog.buffers()
        if self._waiters and (backlog.waiting_bytes != before or not buffers):
            self._changed.notify_all()
        return bool(buffers) or self._gone

    def _run(self) -> None:
        held = -1
        try:
            held = self._connect_and_serve()
        finally:
            with self._lock:
                dropped = self._backlog.clear()
                if dropped:
                    self._stats.dropped_at_stop += dropped
                    log.warning("%d outbound messages were not delivered before stop", dropped)
                self._fd = -1
                if self._stopping:  # stop() wrote its wake-up under this lock: none will follow
                    os.close(self._wake_r)
                    os.close(self._wake_w)
                    self._wake_r = self._wake_w = -1
            if held >= 0:
                os.close(held)

    def _connect_and_serve(self) -> int:
        """Serve reader after reader; returns the write end still held when stopping.

        The first write end is kept across readers. While it is open the pipe exists, so a
        reader that opens between two sessions joins an empty pipe that has a writer: it
        never meets end of file or a previous reader's leftovers. The blocking open of a
        second write end is only how the thread waits for that reader to arrive.
        """
        assert self._fifo is not None
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        held = -1
        while True:
            with self._lock:
                if self._stopping:
                    return held
            arrival = self._fifo.open_write()
            if held < 0:
                held = arrival
                os.set_blocking(held, False)
                poller.register(held, 0)
            else:
                os.close(arrival)
            with self._lock:
                if self._stopping:
                    return held
                self._fd = held
                self._capacity = fcntl.fcntl(held, F_GETPIPE_SZ)
                log.debug("reader connected to %s", self.path)
            self._serve(poller, held)

    def _serve(self, poller: select.poll, fd: int) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._flush()
                if self._gone and self._left():
                    return
                self._gone = False
                self._idle = not self._backlog.pending
                poller.modify(fd, 0 if self._idle else select.POLLOUT)
            for ready, events in poller.poll():
                if ready == self._wake_r:
                    while True:
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            break
                elif events & _GONE:
                    with self._lock:
                        if self._left():
                            return

    def _left(self) -> bool:
        """Handle a reader's departure; False if a new reader already took over the stream.

        A new reader that opened before this thread ran inherits the old stream, leftovers
        included (the race PROTOCOL.md describes). Otherwise what the reader did not take
        whole is queued again and the pipe's unread bytes are drained, so the next reader
        starts on an empty pipe.
        """
        if _has_reader(self._fd):
            log.warning("a new reader took over %s mid-stream", self.path)
            return False
        redelivered = self._backlog.rewind(_unread(self._fd))
        self._drain()
        self._fd = -1
        self._gone = False
        self._idle = False
        if redelivered:
            self._stats.redelivered += redelivered
            log.info(
                "reader left %s; %d messages will go to the next reader", self.path, redelivered
            )
        else:
            log.debug("reader left %s", self.path)
        return True

    def _drain(self) -> None:
        assert self._fifo is not None
        drain = self._fifo.open_read()
        try:
            while True:
                try:
                    if not os.read(drain, PIPE_SIZE):
                        return
                except BlockingIOError:
                    return
        finally:
            os.close(drain)
