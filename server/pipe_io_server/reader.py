"""The in_pipe side: a thread that reads, frames and dispatches what clients write.

The server holds no write end of in_pipe, so end of file tells it that the last writer
left: that is when an unterminated tail is known to be dead and can be dropped instead
of being glued to the next client's first message.
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
        self._wake_r = self._wake_w = self._fd = -1
        self.thread = threading.Thread(target=self._run, name="pipe_io_server reader", daemon=True)

    def start(self) -> None:
        # Opened here, so clients can open in_pipe for writing as soon as start() returns.
        self._fd = self.fifo.open_read()
        try:
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            os.close(self._fd)
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
            self._read_and_dispatch()
        except BaseException as error:
            self._on_failure("the reader thread", error)
        finally:
            with contextlib.suppress(OSError):  # EBADF if something closed it under us
                os.close(self._fd)
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    def _read_and_dispatch(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        poller.register(self._fd, select.POLLIN)
        decoder = self._decoder
        # After a reopen, read without waiting for poll(): a writer that came and went during
        # the reopen gets no hang-up reported on the new descriptor, only end of file.
        probing = fresh = False
        wake = self._wake_r
        while True:
            if not probing:
                ready = poller.poll(resources.quiet_ms())
                if not ready:
                    resources.trim()  # quiet after much traffic
                    continue
                if any(fd == wake for fd, _ in ready):
                    return
            self._before_read()
            try:
                count = os.readv(self._fd, (decoder.get_buffer(),))
            except BlockingIOError:
                probing = False
                continue
            if count:
                fresh = False
                messages = decoder.buffer_updated(count)
                if decoder.discards:
                    self._report()
                if messages:
                    self._stats.received += len(messages)
                    self._dispatch(messages)
                    del messages  # an idle reader holds no message
                resources.note(count)
            elif probing and fresh:
                probing = False  # no writer since the reopen: end of file means nothing
            else:
                decoder.close()
                self._report()
                poller.unregister(self._fd)
                if not self._reopen():
                    return
                poller.register(self._fd, select.POLLIN)
                probing = fresh = True

    def _reopen(self) -> bool:
        """Every writer left. A fresh descriptor stops poll() reporting the old hang-up.

        The new one is opened before the old one is closed, so there is never an instant
        without a reader, when a client's open() would block or its write() fail. Out of
        descriptors, the old one serves on (a writer that comes is read through it) while
        the reopen is retried; False if stop() came meanwhile.
        """
        # Short waits: meanwhile end of file, which tells a dead tail, is seen only between tries.
        shortage = resources.Shortage(f"cannot reopen {self.fifo.path}", self._stopped, 0.05)
        while True:
            try:
                fresh = self.fifo.open_read()
            except OSError as error:
                if not shortage.wait(error):
                    return False
                self._read_while_short()
                continue
            shortage.over()
            old, self._fd = self._fd, fresh
            os.close(old)
            log.debug("all writers left %s", self.fifo.path)
            return True

    def _read_while_short(self) -> None:
        """Between two tries of a reopen: whatever a new writer sent, through the old end."""
        decoder = self._decoder
        while True:
            try:
                count = os.readv(self._fd, (decoder.get_buffer(),))
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
