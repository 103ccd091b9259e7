"""The in_pipe side: reads, frames and dispatches what clients write.

The server holds no write end of in_pipe, so end of file tells it that the last writer
left: that is when an unterminated tail is known to be dead and can be dropped instead
of being glued to the next client's first message.

Reader.pump() does the work of one wake-up and says what to wait for next, so the same
logic runs in a thread of its own (start()) or in an event loop's callbacks (the asyncio
face).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from typing import Callable

from . import resources
from .fifo import Fifo
from .framing import Decoder, Discard
from .stats import Stats

log = logging.getLogger("pipe_io_server")

# One read takes at most this much: it bounds the messages one dispatch holds at once (a read
# of empty messages is that many objects), while a long message is read in place whatever
# its size.
READ_SIZE = 64 * 1024

# What pump() asks its driver to wait for before the next pump(); a positive number is a
# shortage's wait in seconds, which a stop ends early.
READABLE = -1.0  # until the descriptor `fd` is readable
AT_ONCE = 0.0  # nothing: a writer may have come during a reopen


class Reader:
    def __init__(
        self,
        fifo: Fifo,
        stats: Stats,
        max_message_size: int | None,
        *,
        dispatch: Callable[[list[bytes]], None],
        before_read: Callable[[], None],
        on_failure: Callable[[str, BaseException], None],
    ) -> None:
        self.fifo = fifo
        self._stats = stats
        self._decoder = Decoder(max_message_size, read_size=READ_SIZE)
        self._dispatch = dispatch
        self._before_read = before_read  # frees what it can before a read allocates
        self._on_failure = on_failure
        self._stopped = threading.Event()  # interrupts the waits of a shortage
        self._wake_lock = threading.Lock()  # stop() writes to the wake-up pipe; _run closes it
        self._wake_r = self._wake_w = -1
        self.fd = -1
        # After a reopen, read without waiting for readiness: a writer that came and went
        # during the reopen gets no hang-up reported on the new descriptor, only end of file.
        self._probing = self._fresh = False
        self._shortage: resources.Shortage | None = None  # a reopen that waits for descriptors
        # At most this many bytes per read (None: what the pipe holds). A long message is read
        # in place, up to a pipe's capacity at a time; an event loop that reads wants less per
        # callback, each read of fresh memory being a copy and its page faults.
        self.max_read: int | None = None
        self.thread = threading.Thread(target=self._run, name="pipe_io_server reader", daemon=True)

    def open(self) -> None:
        """Open in_pipe: clients can open it for writing from now on."""
        self.fd = self.fifo.open_read()

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # EBADF if something closed it under us
                os.close(self.fd)
            self.fd = -1

    def start(self) -> None:
        """Read in a thread of its own."""
        self.open()
        try:
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self.close()
            raise
        self.thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"!")

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as error:
            self._on_failure("the reader thread", error)
        finally:
            self.close()
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        watched = -1
        wait = READABLE
        while True:
            if wait == READABLE:
                if watched != self.fd:
                    if watched >= 0:
                        poller.unregister(watched)
                    poller.register(self.fd, select.POLLIN)
                    watched = self.fd
                ready = poller.poll(resources.quiet_ms())
                if not ready:
                    resources.trim()  # quiet after much traffic
                    continue
                if any(fd == self._wake_r for fd, _ in ready):
                    return
            elif self._stopped.is_set() if wait == AT_ONCE else self._stopped.wait(wait):
                return
            wait = self.pump()

    def pump(self) -> float:
        """Read what is there (or retry a reopen), dispatch the messages it ends; returns
        what to wait for before the next call: READABLE, AT_ONCE or seconds."""
        if self._shortage is not None:
            self._read_while_short()
            return self._reopen()
        self._before_read()
        decoder = self._decoder
        try:
            count = os.readv(self.fd, (self._buffer(),))
        except BlockingIOError:
            self._probing = False
            return READABLE
        if count:
            self._fresh = False
            messages = decoder.buffer_updated(count)
            if decoder.discards:
                self._report()
            if messages:
                self._stats.received += len(messages)
                self._dispatch(messages)
                del messages  # an idle reader holds no message
            resources.note(count)
            return AT_ONCE if self._probing else READABLE
        if self._probing and self._fresh:
            self._probing = False  # no writer since the reopen: end of file means nothing
            return READABLE
        decoder.close()
        self._report()
        return self._reopen()

    def _buffer(self) -> memoryview:
        buffer = self._decoder.get_buffer()
        return buffer if self.max_read is None else buffer[: self.max_read]

    def _reopen(self) -> float:
        """Every writer left. A fresh descriptor stops poll() reporting the old hang-up.

        The new one is opened before the old one is closed, so there is never an instant
        without a reader, when a client's open() would block or its write() fail. Out of
        descriptors, the old one serves on (a writer that comes is read through it) while
        the reopen is retried after a wait.
        """
        try:
            fresh = self.fifo.open_read()
        except OSError as error:
            if self._shortage is None:
                # Short waits: meanwhile end of file, which tells a dead tail, is seen only
                # between tries.
                self._shortage = resources.Shortage(
                    f"cannot reopen {self.fifo.path}", self._stopped, 0.05
                )
            return self._shortage.delay(error)
        if self._shortage is not None:
            self._shortage.over()
            self._shortage = None
        old, self.fd = self.fd, fresh
        os.close(old)
        log.debug("all writers left %s", self.fifo.path)
        self._probing = self._fresh = True
        return AT_ONCE

    def _read_while_short(self) -> None:
        """Between two tries of a reopen: whatever a new writer sent, through the old end."""
        decoder = self._decoder
        while True:
            try:
                count = os.readv(self.fd, (self._buffer(),))
            except BlockingIOError:
                return
            if not count:
                decoder.close()  # that writer left too: its tail is dead
                self._report()
                return
            messages = decoder.buffer_updated(count)
            self._report()
            if messages:
                self._stats.received += len(messages)
                self._dispatch(messages)

    def _report(self) -> None:
        for discard in self._decoder.discards:
            self._log_discard(discard)
        self._decoder.discards.clear()

    def _log_discard(self, discard: Discard) -> None:
        if discard.reason == "tail":
            self._stats.tails_discarded += 1
            log.warning(
                "discarded an unterminated tail of %d bytes: a client closed %s mid-message",
                discard.size,
                self.fifo.path,
            )
        else:
            self._stats.oversized_discarded += 1
            log.warning(
                "discarded a message of %d bytes from %s: longer than max_message_size (%s)",
                discard.size,
                self.fifo.path,
                self._decoder.max_message_size,
            )
