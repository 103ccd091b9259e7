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

from .fifo import PIPE_SIZE, Fifo
from .framing import Decoder, Discard
from .stats import Stats

log = logging.getLogger("pipe_io_server")


class Reader:
    def __init__(
        self,
        fifo: Fifo,
        stats: Stats,
        max_message_size: int | None,
        dispatch: Callable[[list[bytes]], None],
        before_read: Callable[[], None],
    ) -> None:
        self.fifo = fifo
        self._stats = stats
        # Reads land in the decoder's buffers (a reused one, or a long message itself):
        # os.read() would allocate and shrink a pipe-sized block on every call.
        self._decoder = Decoder(max_message_size, read_size=PIPE_SIZE)
        self._dispatch = dispatch
        self._before_read = before_read  # frees what it can before a read allocates
        self._wake_r = self._wake_w = self._fd = -1
        self.thread = threading.Thread(target=self._run, name="pipe_io_server reader", daemon=True)

    def start(self) -> None:
        # Opened here, so clients can open in_pipe for writing as soon as start() returns.
        self._fd = self.fifo.open_read()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.thread.start()

    def stop(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def _run(self) -> None:
        try:
            self._read_and_dispatch()
        finally:
            os.close(self._fd)
        # Only stop() ends the loop, after its one wake-up write: the pipe is free to close.
        os.close(self._wake_r)
        os.close(self._wake_w)

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
                for fd, _ in poller.poll():
                    if fd == wake:
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
            elif probing and fresh:
                probing = False  # no writer since the reopen: end of file means nothing
            else:
                decoder.close()
                self._report()
                poller.unregister(self._fd)
                self._reopen()
                poller.register(self._fd, select.POLLIN)
                probing = fresh = True

    def _reopen(self) -> None:
        """Every writer left. A fresh descriptor stops poll() reporting the old hang-up.

        The new one is opened before the old one is closed, so there is never an instant
        without a reader, when a client's open() would block or its write() fail.
        """
        old, self._fd = self._fd, self.fifo.open_read()
        os.close(old)
        log.debug("all writers left %s", self.fifo.path)

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
