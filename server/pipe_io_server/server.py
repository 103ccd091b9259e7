"""The public servers: the pipe-io-server 1.0.x API, with the guarantees of docs/PROTOCOL.md."""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType

from .fifo import Fifo
from .framing import DEFAULT_MAX_MESSAGE_SIZE, LF, Message, encode
from .inbox import Inbox
from .reader import Reader
from .stats import Stats
from .writer import Writer

log = logging.getLogger("pipe_io_server")

DEFAULT_PERMISSIONS = 0o600
DEFAULT_MAX_BACKLOG = 64 * 1024 * 1024
DEFAULT_SEND_TIMEOUT = 5.0
STOP_TIMEOUT = 0.9


def _nothing() -> None:
    pass


class _PipeServer:
    """Lifecycle shared by the reader, writer and two-way servers."""

    def __init__(
        self,
        *,
        in_pipe: str | None,
        out_pipe: str | None,
        permissions: int,
        manage_pipes: bool,
        max_message_size: int | None,
        max_backlog: int | None,
        send_timeout: float | None,
    ) -> None:
        for name, value in (("max_message_size", max_message_size), ("max_backlog", max_backlog)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be a non-negative number of bytes or None")
        if (
            in_pipe is not None
            and out_pipe is not None
            and os.path.abspath(in_pipe) == os.path.abspath(out_pipe)
        ):
            raise ValueError(f"in_pipe and out_pipe must be two FIFOs, both are {in_pipe}")
        self._in_pipe = in_pipe
        self._out_pipe = out_pipe
        self._permissions = permissions
        self._manage_pipes = manage_pipes
        self._max_message_size = max_message_size
        self.stats = Stats()
        self._inbox = Inbox(max_backlog)
        self._writer = (
            Writer(out_pipe, self.stats, max_backlog, send_timeout)
            if out_pipe is not None
            else None
        )
        self._reader: Reader | None = None
        # The message whose handler runs: framed by the decoder, so it holds no LF, and
        # send_message() need not scan it again (a forwarded message is scanned once).
        self._in_hand: bytes | None = None
        self._fifos: list[Fifo] = []
        self._state = "new"
        self._state_lock = threading.Lock()
        self._stopped = threading.Event()
        if manage_pipes:
            self._open_fifos()

    def _open_fifos(self) -> None:
        try:
            for path in (self._in_pipe, self._out_pipe):
                if path is not None:
                    self._fifos.append(
                        Fifo(path, managed=self._manage_pipes, permissions=self._permissions)
                    )
        except BaseException:
            self._close_fifos()
            raise

    def _close_fifos(self) -> None:
        while self._fifos:
            self._fifos.pop().close()

    def start(self) -> None:
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError(f"the server is {self._state}: create a new one to start again")
            if not self._manage_pipes:
                self._open_fifos()
            fifos = iter(self._fifos)
            if self._in_pipe is not None:
                self._reader = Reader(
                    next(fifos),
                    self.stats,
                    self._max_message_size,
                    self._dispatch,
                    self._writer.prune if self._writer else _nothing,
                )
                self._reader.start()
            if self._writer is not None:
                self._writer.start(next(fifos))
            self._state = "running"

    def stop(self) -> None:
        """Stop within a second from any state; safe to call twice and from a handler."""
        with self._state_lock:
            was, self._state = self._state, "stopped"
        if was == "stopped":
            return
        self._inbox.close()
        if was == "running":
            self._halt()
        self._close_fifos()
        self._stopped.set()

    def _halt(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        reader, writer = self._reader, self._writer
        if reader is not None:
            reader.stop()
        unblocker = -1
        if writer is not None:
            writer.stop()
            unblocker = writer.unblock_open()
        try:
            for part in (reader, writer):
                if part is not None and part.thread is not threading.current_thread():
                    part.thread.join(max(0.0, deadline - time.monotonic()))
                    if part.thread.is_alive():
                        log.warning("%s is still busy after stop()", part.thread.name)
        finally:
            if unblocker >= 0:
                os.close(unblocker)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server is stopped; False if the timeout came first."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> _PipeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _dispatch(self, messages: list[bytes]) -> None:
        handler = self.handle_message  # type: ignore[attr-defined]
        # The replies to the messages of one read are collected and written together.
        batch = self._writer if len(messages) > 1 else None
        if batch is not None:
            batch.cork()
        try:
            for message in messages:
                self._in_hand = message
                try:
                    handler(message)
                except Exception as error:
                    self._handler_failed(message, error)
        finally:
            self._in_hand = None
            if batch is not None:
                batch.uncork()

    def _handler_failed(self, message: bytes, error: Exception) -> None:
        self.stats.handler_errors += 1
        log.error(
            "handle_message raised on a message of %d bytes; the server goes on",
            len(message),
            exc_info=error,
        )
        try:
            self.on_handler_error(message, error)  # type: ignore[attr-defined]
        except Exception:
            log.exception("on_handler_error raised too")


class PipeReaderServer(_PipeServer):
    """Receives messages that clients write into `in_pipe`."""

    def __init__(
        self,
        in_pipe: str,
        permissions: int = DEFAULT_PERMISSIONS,
        manage_pipes: bool = True,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_backlog: int | None = DEFAULT_MAX_BACKLOG,
    ) -> None:
        super().__init__(
            in_pipe=in_pipe,
            out_pipe=None,
            permissions=permissions,
            manage_pipes=manage_pipes,
            max_message_size=max_message_size,
            max_backlog=max_backlog,
            send_timeout=None,
        )

    @property
    def in_pipe(self) -> str:
        assert self._in_pipe is not None
        return self._in_pipe

    def handle_message(self, message: bytes) -> None:
        """Called in the reader thread with each message, in order; override or assign it.

        Left as is, messages queue up for recv_message() (up to max_backlog bytes, then the
        server stops reading and the writing client waits).
        """
        self._inbox.put(message)

    def recv_message(self, timeout: float | None = None) -> bytes:
        """The next message for servers that pull instead of overriding handle_message.

        Raises TimeoutError when none arrives in time, EOFError once the server is stopped
        and every received message was taken.
        """
        return self._inbox.get(timeout)

    def on_handler_error(self, message: bytes, error: Exception) -> None:
        """Called after handle_message raised (already logged); the server goes on either way."""


class PipeWriterServer(_PipeServer):
    """Sends messages to clients reading `out_pipe`."""

    def __init__(
        self,
        out_pipe: str,
        permissions: int = DEFAULT_PERMISSIONS,
        manage_pipes: bool = True,
        *,
        max_backlog: int | None = DEFAULT_MAX_BACKLOG,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        super().__init__(
            in_pipe=None,
            out_pipe=out_pipe,
            permissions=permissions,
            manage_pipes=manage_pipes,
            max_message_size=None,
            max_backlog=max_backlog,
            send_timeout=send_timeout,
        )

    @property
    def out_pipe(self) -> str:
        assert self._out_pipe is not None
        return self._out_pipe

    def send_message(self, message: Message) -> None:
        """Queue one message (bytes, or str sent as UTF-8) for the current or next reader.

        Raises ValueError if it contains a newline, BacklogFull if the outbound backlog
        stays over max_backlog bytes for send_timeout seconds, RuntimeError once stopped.
        """
        assert self._writer is not None
        if type(message) is not bytes or (message is not self._in_hand and LF in message):
            message = encode(message)  # converts it, or refuses its newline
        self._writer.send(message)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message sent so far is written into out_pipe (not yet read)."""
        assert self._writer is not None
        return self._writer.flush(timeout)


class PipeIOServer(PipeReaderServer, PipeWriterServer):
    """Receives from `in_pipe` and sends to `out_pipe`: the two-way server."""

    def __init__(
        self,
        in_pipe: str,
        out_pipe: str,
        permissions: int = DEFAULT_PERMISSIONS,
        manage_pipes: bool = True,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_backlog: int | None = DEFAULT_MAX_BACKLOG,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        _PipeServer.__init__(
            self,
            in_pipe=in_pipe,
            out_pipe=out_pipe,
            permissions=permissions,
            manage_pipes=manage_pipes,
            max_message_size=max_message_size,
            max_backlog=max_backlog,
            send_timeout=send_timeout,
        )
