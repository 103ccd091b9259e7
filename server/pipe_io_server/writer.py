"""The out_pipe side: a thread that serves one reader at a time, and the sends that feed it.

Sessions. The thread waits for a reader in a blocking open() of out_pipe. When one arrives,
a managed FIFO is renewed: a fresh FIFO is renamed over the path, so the reader in session
has its pipe to itself and a reader that opens the path later waits in open() on the fresh
one for its turn. The server never holds a read end of out_pipe, so when the reader leaves
(no reader left: POLLERR on our write end), the bytes still unread in the pipe (FIONREAD)
tell which messages it took whole; the others are queued again for the next reader, and
closing our end discards the pipe with whatever was left in it. A FIFO that cannot be
renewed (an unmanaged one) is shared by its sessions: the write end is kept across readers
and the leftovers are drained, with the race PROTOCOL.md describes.

Sending. Any thread may send; a message is charged its payload plus MESSAGE_OVERHEAD against
max_backlog, and written at once from the caller when a reader is connected and the pipe
takes it (one thread hop less per round trip); otherwise the writer thread writes it.

Batching. While the reader thread dispatches the messages of one read, its sends collect
without the lock and reach the backlog together: one lock and one write per batch.
"""

from __future__ import annotations

import contextlib
import errno
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
from typing import Callable

from . import resources
from .backlog import Backlog, BacklogFull
from .fifo import F_GETPIPE_SZ, PIPE_SIZE, Fifo
from .framing import MESSAGE_OVERHEAD, NEWLINE
from .stats import Stats

log = logging.getLogger("pipe_io_server")

# A batch of sends goes to the backlog at the latest when it holds this much; a sender that
# may not wait (an event loop) tries then, and waits for the lock once it holds four times as
# much: queueing a larger batch at once would cost it more than the wait.
BATCH_FLUSH_BYTES = 256 * 1024
BATCH_HOLD_BYTES = 4 * BATCH_FLUSH_BYTES
# Below this many bytes held for redelivery, prune() leaves the bookkeeping to the next write.
PRUNE_BYTES = 256 * 1024
# A larger message is left to the writer thread, so that the caller (often the reader thread)
# goes back to reading while it is written: on a pipe the two copies then overlap.
DIRECT_WRITE_BYTES = 64 * 1024
# While idle with large messages still held for redelivery, how often to ask the pipe whether
# the reader has taken them (doubling up to a second), so that an idle server holds none.
RECLAIM_POLL_MS = 20
_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL
_get_ident = threading.get_ident  # a global, not a module attribute: looked up per send


class ServerStopped(RuntimeError):
    """send_message() after stop(): the message was not queued."""


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
        self,
        path: str,
        stats: Stats,
        max_backlog: int | None,
        send_timeout: float | None,
        on_failure: Callable[[str, BaseException], None],
    ) -> None:
        self.path = path
        self._stats = stats
        self._max_backlog = max_backlog
        self._send_timeout = send_timeout
        self._on_failure = on_failure
        self._backlog = Backlog()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # backlog shrank, or stopping
        self._waiters = 0  # threads in _wait_for_change(), and _watchers
        self._watchers: list[Callable[[], None]] = []  # called by _notify(), once each
        # Senders that may wait release their batch under the lock and write what the pipe
        # takes. An event loop may not wait: it writes less, and finding the lock busy, it
        # leaves its batch to the writer thread, which takes it on its next round (up to
        # BATCH_HOLD_BYTES: the writer thread cannot take it while the pipe is full).
        self.patient_senders = True
        self._fifo: Fifo | None = None
        self._fd = -1  # the write end of the session in progress, -1 between sessions
        self._held = -1  # a shared FIFO's write end, kept across its sessions
        self._capacity = 0
        self._gone = False
        self._idle = False
        self._waiting_for_reader = False
        # While the reader thread dispatches the messages of one read, its sends collect here,
        # without the lock, and reach the backlog together: one lock and one write per batch.
        # A deque, whose append and popleft are atomic, so that another thread's send can move
        # the batch ahead of its own message without the owner taking a lock per message.
        self._batch_owner: int | None = None
        self._batch: deque[bytes] = deque()
        self._batch_cost = 0  # the owner's running sum; only it resets the count
        self._batch_due = BATCH_FLUSH_BYTES  # the cost at which the owner releases it
        # What other threads took from the batch (its cost), for an owner that does not
        # release it itself to subtract: only lock holders add, only the owner reads.
        self._batch_taken = 0
        self._batch_taken_seen = 0
        # What the batch may cost before max_backlog is reached, read once per batch instead of
        # once per message; -1 once stopping, so that every send takes the checked path.
        self._batch_room = -1
        self._stopping = False
        self._stopped = threading.Event()  # interrupts the waits of a shortage
        self._wake_r = self._wake_w = -1
        self._wake_lock = threading.Lock()  # nudge() writes to the wake-up pipe; _run closes it
        # Kept to be given up: stop() must open a read end to meet a thread blocked in open(),
        # even when the process has run out of descriptors.
        self._spare = -1
        self.thread = threading.Thread(target=self._run, name="pipe_io_server writer", daemon=True)

    def start(self, fifo: Fifo) -> None:
        self._fifo = fifo
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
            raise
        self.thread.start()

    # -- Sending (any thread) ---------------------------------------------------------------

    def send(self, message: bytes, wait: bool | Callable[[], None] = True) -> bool:
        """Queue a message; True once queued.

        A full backlog is waited for (up to send_timeout) unless `wait` is False or a
        callable: then send returns False, the message not queued, and calls the callable
        once, with the writer locked (it must not block), when the backlog shrinks or the
        writer stops.
        """
        if self._batch_owner == _get_ident():
            cost = self._batch_cost + len(message) + MESSAGE_OVERHEAD
            if cost <= self._batch_room:
                self._batch.append(message)
                self._batch_cost = cost
                if cost >= self._batch_due:
                    self._release_batch(self.patient_senders or cost >= BATCH_HOLD_BYTES)
                return True
            self._release_batch()
        with self._lock:
            limit = self._max_backlog
            cost = len(message) + MESSAGE_OVERHEAD
            full = limit is not None and self._backlog.waiting_cost + cost > limit
            if full and not self._make_room(cost, limit, wait):
                return False
            if self._stopping:
                self._stats.dropped_at_stop += 1
                raise ServerStopped("the server is stopped: message not sent")
            if self._batch:
                # Replies batched before this send was called must leave before it.
                self._take_batch()
            self._stats.sent += 1
            backlog, fd = self._backlog, self._fd
            if fd < 0 or len(message) >= DIRECT_WRITE_BYTES:
                backlog.push(message)
                self._wake()
            elif backlog.pending or self._gone:
                backlog.push(message)
                if self._flush(self.patient_senders):
                    self._wake()
            else:
                self._write_alone(fd, message + NEWLINE)
            return True

    def forget(self, when_room: Callable[[], None]) -> None:
        """Withdraw a callable given to send() that has not been called yet."""
        with self._lock:
            if when_room in self._watchers:
                self._watchers.remove(when_room)
                self._waiters -= 1

    def _notify(self) -> None:
        """The backlog shrank, or stopping (lock held): wake whoever waits for it."""
        self._changed.notify_all()
        if self._watchers:
            watchers, self._watchers = self._watchers, []
            self._waiters -= len(watchers)
            for when_room in watchers:
                when_room()

    def _write_alone(self, fd: int, framed: bytes) -> None:
        """The request-reply path: a lone small message, written at once by its sender with
        one write() and no queueing (lock held, a reader connected, nothing pending)."""
        try:
            count = os.write(fd, framed)
        except BlockingIOError:
            count = 0
        except BrokenPipeError:
            count = 0
            self._gone = True
        self._backlog.wrote(framed, count)
        if count < len(framed):
            self._wake()
        elif self._backlog.reclaimable > self._capacity:
            self._acknowledge()

    def _make_room(self, cost: int, limit: int | None, wait: bool | Callable[[], None]) -> bool:
        """The backlog is full (lock held): wait for room if `wait` is True; otherwise False
        unless the message is accepted anyway, and a callable `wait` is called later."""
        assert limit is not None
        if wait is True:
            self._wait_for_room(cost, limit)
        elif not self._stopping and self._backlog.waiting_cost:
            if wait is not False:
                self._watchers.append(wait)
                self._waiters += 1
            return False
        return True

    def _wait_for_room(self, cost: int, limit: int) -> None:
        deadline = None if self._send_timeout is None else time.monotonic() + self._send_timeout
        while (
            not self._stopping
            and self._backlog.waiting_cost
            and self._backlog.waiting_cost + cost > limit
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

    def written(self, when_changed: Callable[[], None]) -> bool | None:
        """flush() for a caller that may not wait: True once nothing queued (a batch left to
        the writer thread included) waits to be written, False while stopping with some that
        does; otherwise None, and when_changed is called once, with the writer locked (it
        must not block), when the backlog shrinks or the writer stops."""
        with self._lock:
            if not (self._backlog.pending or self._batch):
                return True
            if self._stopping:
                return False
            self._watchers.append(when_changed)
            self._waiters += 1
            return None

    def prune(self, wait: bool = True) -> None:
        """Forget the large messages a reader has already taken, without waiting to write
        (nor, unless `wait`, for the lock)."""
        if self._backlog.reclaimable >= PRUNE_BYTES and self._lock.acquire(wait):
            try:
                self._acknowledge()
            finally:
                self._lock.release()

    def _acknowledge(self) -> None:
        """Forget what the reader has taken (lock held, a reader connected)."""
        if self._fd >= 0:
            backlog = self._backlog
            held = backlog.reclaimable
            backlog.acknowledge(_unread(self._fd))
            # Freed while idle, after the last trim maybe: the next quiet moment trims again.
            resources.note(held - backlog.reclaimable)

    # -- Batching (the reader thread while it dispatches the messages of one read, or an
    # event loop while it hands them out) ---------------------------------------------------

    def cork(self) -> None:
        """Collect this thread's sends until uncork()."""
        if not self.patient_senders:
            taken = self._batch_taken  # read before waiting_cost (in _room): never too little
            self._batch_cost -= taken - self._batch_taken_seen
            self._batch_taken_seen = taken
        self._batch_room = self._room()
        self._batch_owner = _get_ident()

    def uncork(self) -> None:
        self._batch_owner = None
        if not self._release_batch(self.patient_senders):
            self._nudge()

    def _nudge(self) -> None:
        """Have the writer thread take the batch, if it is idle: otherwise it takes the batch
        on its next round anyway."""
        if self._batch and self._idle:
            with self._wake_lock:
                if self._wake_w >= 0:
                    with contextlib.suppress(BlockingIOError):
                        os.write(self._wake_w, b"!")

    def _room(self) -> int:
        if self._stopping:
            return -1
        limit = self._max_backlog
        return sys.maxsize if limit is None else limit - self._backlog.waiting_cost

    def _release_batch(self, wait: bool = True) -> bool:
        """Queue the batch; False, the batch kept, if the lock is busy and `wait` False."""
        if not self._lock.acquire(wait):
            self._batch_due = self._batch_cost + BATCH_FLUSH_BYTES  # not on every send
            return False
        try:
            self._batch_cost = 0
            self._batch_due = BATCH_FLUSH_BYTES
            batch, self._batch = self._batch, deque()
            self._batch_taken_seen = self._batch_taken
            self._push_batch(list(batch))
            self._batch_room = self._room()
            if self._flush(self.patient_senders) if self._fd >= 0 else self._backlog.pending:
                self._wake()
        finally:
            self._lock.release()
        return True

    def _take_batch(self) -> None:
        """Queue the batch of another thread, which may still be appending to it (lock held)."""
        taken = _drain(self._batch)
        self._batch_taken += sum(map(len, taken)) + len(taken) * MESSAGE_OVERHEAD
        self._push_batch(taken)

    def _push_batch(self, batch: list[bytes]) -> None:
        # send_message returned for each of them: they were sent, whatever happens next.
        self._stats.sent += len(batch)
        if self._stopping:
            self._stats.dropped_at_stop += len(batch)
        elif batch:
            self._backlog.push_many(batch, sum(map(len, batch)))

    # -- Writing (the caller or the writer thread, lock held, a reader connected) -----------

    def _wake(self) -> None:
        if self._idle:
            self._idle = False
            os.write(self._wake_w, b"!")

    def _flush(self, eager: bool = True) -> bool:
        """Write what the pipe takes now; True when bytes are left for the writer thread.

        Eager, it writes on while a reader keeps taking, up to a pipe's worth, so the lock is
        never held long. Otherwise (a sender that may not wait) it writes less, and stops once
        the pipe is full: after each write it may wait for the interpreter's lock.
        """
        backlog = self._backlog
        before = backlog.waiting_cost
        buffers = backlog.buffers()  # the backlog's own list: sent() leaves in it what is left
        budget = self._capacity if eager else BATCH_FLUSH_BYTES
        while buffers and not self._gone and budget > 0:
            try:
                count = os.writev(self._fd, buffers)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self._gone = True
                break
            backlog.sent(count)
            resources.note(count)
            budget -= count
            if buffers and not eager:
                break  # the pipe took part of it: it is full
            if backlog.reclaimable > self._capacity:
                # Bounds the memory held for redelivery to about one pipe's worth.
                self._acknowledge()
            buffers = backlog.buffers()
        if self._waiters and (backlog.waiting_cost != before or not buffers):
            self._notify()
        return bool(buffers) or self._gone

    # -- Sessions (the writer thread) -------------------------------------------------------

    def _run(self) -> None:
        try:
            self._sessions()
        except BaseException as error:
            self._on_failure("the writer thread", error)
        finally:
            with self._lock:
                if self._batch:
                    self._take_batch()  # an event loop's, left to this thread: counted too
                dropped = self._backlog.clear()
                if dropped:
                    self._stats.dropped_at_stop += dropped
                    log.warning("%d outbound messages were not delivered before stop", dropped)
                for fd in {self._fd, self._held, self._spare} - {-1}:
                    os.close(fd)
                self._fd = self._held = self._spare = -1
                if self._stopping:  # stop() wrote its wake-up under this lock: none will follow
                    with self._wake_lock:
                        os.close(self._wake_r)
                        os.close(self._wake_w)
                        self._wake_r = self._wake_w = -1

    def _sessions(self) -> None:
        assert self._fifo is not None
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        while True:
            fd = self._wait_for_reader()
            if fd < 0:
                return
            if self._held >= 0:
                os.close(fd)  # the shared write end carries on; this one only waited
                fd = self._held
            # Renewed before a single byte is written: a reader that reached this pipe by path
            # before the renewal can only have found it empty, and takes over the session.
            private = self._fifo.managed and self._fifo.renew()
            if not private:
                self._held = fd
            os.set_blocking(fd, False)  # before a caller's send can write to it
            with self._lock:
                self._fd = fd  # from here on, _run() closes it if the thread ends
                if self._stopping:
                    return
                self._capacity = fcntl.fcntl(fd, F_GETPIPE_SZ)
            log.debug("reader connected to %s", self.path)
            poller.register(fd, 0)
            try:
                self._serve(poller, fd, private)
            finally:
                poller.unregister(fd)

    def _wait_for_reader(self) -> int:
        """A write end once a reader has the FIFO open; -1 when stopping."""
        assert self._fifo is not None
        shortage = resources.Shortage(f"cannot open {self.path} for writing", self._stopped)
        while True:
            with self._lock:
                if self._stopping:
                    return -1
                self._waiting_for_reader = True
            try:
                fd = self._fifo.open_write()
            except OSError as error:
                if not shortage.wait(error):
                    return -1
                continue
            finally:
                with self._lock:
                    self._waiting_for_reader = False
            shortage.over()
            return fd

    def _serve(self, poller: select.poll, fd: int, private: bool) -> None:
        reclaim_ms = RECLAIM_POLL_MS
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._flush_round()
                if self._gone and self._left(fd, private):
                    return
                self._gone = False
                poller.modify(fd, 0 if self._idle else select.POLLOUT)
                reclaiming = self._idle and self._backlog.reclaimable >= PRUNE_BYTES
            events = poller.poll(reclaim_ms if reclaiming else resources.quiet_ms())
            if not events:
                if reclaiming:
                    reclaim_ms = min(reclaim_ms * 2, 1000)
                    with self._lock:
                        self._acknowledge()
                else:
                    resources.trim()  # quiet after much traffic
                continue
            reclaim_ms = RECLAIM_POLL_MS
            for ready, happened in events:
                if ready == self._wake_r:
                    while True:
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            break
                elif happened & _GONE:
                    with self._lock:
                        if self._left(fd, private):
                            return

    def _flush_round(self) -> None:
        """Write what the pipe takes, and say whether anything is left to do (lock held)."""
        takes_batch = not self.patient_senders
        if takes_batch and self._batch:
            self._take_batch()
        self._flush()
        # Idle, unless a batch came meanwhile: its owner nudges only an idle thread.
        self._idle = not self._backlog.pending and not (takes_batch and self._batch)

    def _left(self, fd: int, private: bool) -> bool:
        """The one path for a reader's departure (lock held); False if another reader has the
        pipe and goes on with the stream (a shared FIFO only, the race of PROTOCOL.md).

        What the reader did not take whole is queued again, in order, and the next reader
        starts on an empty pipe: a private one goes with our descriptor, a shared one is
        drained.
        """
        unread = _unread(fd)
        if not private and _has_reader(fd):
            if not self._stopping:
                log.warning("a new reader took over %s mid-stream", self.path)
            return False
        if private or not self._drained():
            os.close(fd)  # the pipe, and what the reader left in it, goes with it
            self._held = -1
        self._fd = -1
        self._gone = self._idle = False
        redelivered = self._backlog.rewind(unread)
        if redelivered:
            self._stats.redelivered += redelivered
            log.info(
                "reader left %s; %d messages will go to the next reader", self.path, redelivered
            )
        else:
            log.debug("reader left %s", self.path)
        return True

    def _drained(self) -> bool:
        """Empty a shared pipe through a private read end; False without a descriptor for it."""
        assert self._fifo is not None
        try:
            drain = self._fifo.open_read()
        except OSError as error:
            if error.errno not in resources.SHORTAGES:
                raise
            return False  # the caller closes the pipe instead, and leftovers go with it
        try:
            while True:
                try:
                    if not os.read(drain, PIPE_SIZE):
                        return True
                except BlockingIOError:
                    return True
        finally:
            os.close(drain)

    # -- Stopping ---------------------------------------------------------------------------

    def stop(self) -> int:
        """Stop the thread; returns a descriptor for the caller to close once it has ended
        (it met a thread blocked in open() waiting for a reader), or -1."""
        with self._lock:
            self._stopping = True
            self._stopped.set()
            self._batch_room = -1
            self._notify()
            if self._wake_w >= 0:
                # Unconditionally: the thread may be waiting for POLLOUT on a full pipe.
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"!")
            if not self._waiting_for_reader or self._fifo is None:
                return -1
            try:
                return self._fifo.open_read()
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE) or self._spare < 0:
                    raise
                os.close(self._spare)  # out of descriptors: this one was kept for the purpose
                self._spare = -1
                return self._fifo.open_read()
