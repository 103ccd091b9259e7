"""The public servers: the pipe-io-server 1.0.x API, with the guarantees of docs/PROTOCOL.md."""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType
from typing import Any, TypeVar

from . import resources
from .fifo import Fifo
from .framing import DEFAULT_MAX_MESSAGE_SIZE, LF, Message, encode
from .inbox import Inbox
from .reader import Reader
from .stats import Stats
from .writer import ServerStopped, Writer

log = logging.getLogger("pipe_io_server")

DEFAULT_PERMISSIONS = 0o600
DEFAULT_MAX_BACKLOG = 64 * 1024 * 1024
DEFAULT_SEND_TIMEOUT = 5.0
STOP_TIMEOUT = 0.9

_Server = TypeVar("_Server", bound="_PipeServer")


def _location(path: str) -> str:
    """Where a path leads, through symlinked folders: two names for one FIFO meet here."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(folder), name)


class _PipeServer:
    """Lifecycle shared by the reader, writer and two-way servers.

    The public constructors take their own arguments and pass the rest along (cooperative
    __init__), so a class built like 1.0.x's own PipeIOServer, on PipeReaderServer and
    PipeWriterServer with super().__init__(in_pipe=..., out_pipe=...), works too.
    """

    def __init__(
        self,
        *,
        in_pipe: str | None = None,
        out_pipe: str | None = None,
        permissions: int = DEFAULT_PERMISSIONS,
        manage_pipes: bool = True,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_backlog: int | None = DEFAULT_MAX_BACKLOG,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        **unexpected: Any,
    ) -> None:
        if unexpected:
            raise TypeError(f"unexpected keyword argument {next(iter(unexpected))!r}")
        for name, value in (("max_message_size", max_message_size), ("max_backlog", max_backlog)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be a non-negative number of bytes or None")
        if (
            in_pipe is not None
            and out_pipe is not None
            and _location(in_pipe) == _location(out_pipe)
        ):
            raise ValueError(f"in_pipe and out_pipe must be two FIFOs, both are {in_pipe}")
        # Resolved once: a later chdir() cannot lose the FIFOs.
        self._in_pipe = None if in_pipe is None else os.path.abspath(in_pipe)
        self._out_pipe = None if out_pipe is None else os.path.abspath(out_pipe)
        self._permissions = permissions
        self._manage_pipes = manage_pipes
        self._max_message_size = max_message_size
        self.stats = Stats()
        self._inbox = Inbox(max_backlog)
        self._writer = (
            Writer(self._out_pipe, self.stats, max_backlog, send_timeout, self._failed)
            if self._out_pipe is not None
            else None
        )
        self._reader: Reader | None = None
        # The message whose handler runs: framed by the decoder, so it holds no LF, and
        # send_message() need not scan it again (a forwarded message is scanned once).
        self._in_hand: bytes | None = None
        self._fifos: list[Fifo] = []
        self._state = "new"
        self._state_lock = threading.Lock()
        self._halting = False  # read by the dispatch loop before each handler call
        self._stopped = threading.Event()
        self._name = f"{type(self).__name__}({self._in_pipe or self._out_pipe})"
        self._daemon = True
        if manage_pipes:
            self._open_fifos()

    def _open_fifos(self) -> None:
        try:
            for path in (self._in_pipe, self._out_pipe):
                if path is not None:
                    fifo = Fifo(
                        path,
                        managed=self._manage_pipes,
                        permissions=self._permissions,
                        inbound=path == self._in_pipe,
                    )
                    self._fifos.append(fifo)
            if len(self._fifos) == 2 and os.path.samestat(self._fifos[0].stat, self._fifos[1].stat):
                raise ValueError(
                    f"in_pipe and out_pipe must be two FIFOs, both are {self._in_pipe}"
                )
        except BaseException:
            self._close_fifos(keep_found=True)
            raise

    def _close_fifos(self, keep_found: bool = False) -> None:
        while self._fifos:
            fifo = self._fifos.pop()
            if fifo.path == self._out_pipe:
                fifo.release_waiting_readers()
            fifo.close(keep_found)

    def start(self) -> None:
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError(f"the server is {self._state}: create a new one to start again")
            if not self._manage_pipes:
                self._open_fifos()
            self._state = "running"
        resources.one_arena()
        try:
            fifos = iter(self._fifos)
            if self._in_pipe is not None:
                self._reader = Reader(
                    next(fifos),
                    self.stats,
                    self._max_message_size,
                    dispatch=self._dispatch,
                    before_read=self._prune,
                    on_failure=self._failed,
                )
                self._start_reading(self._reader)
            if self._writer is not None:
                self._writer.start(next(fifos))
        except BaseException:
            self.stop()  # what started stops: no thread and no FIFO outlive a refused start
            raise

    def _start_reading(self, reader: Reader) -> None:
        reader.start()

    def _prune(self) -> None:
        if self._writer is not None:
            self._writer.prune()

    def stop(self) -> None:
        """Stop within a second from any state; safe to call twice and from a handler.

        handle_message is not called again once stop() has returned; messages already read
        but not yet handled are counted in stats.unhandled_at_stop. on_stop() runs last.
        """
        with self._state_lock:
            was, self._state = self._state, "stopped"
        if was == "stopped":
            return
        self._halting = True
        self._inbox.close()
        if was == "running":
            self._halt()
        self._close_fifos()
        self._stopped.set()
        try:
            self.on_stop()
        except Exception:
            log.exception("on_stop raised")

    def _halt(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        reader, writer = self._reader, self._writer
        if reader is not None:
            reader.stop()
        unblocker = writer.stop() if writer is not None else -1
        try:
            for part in (reader, writer):
                if part is None or part.thread.ident is None:
                    continue  # never started: a start() that failed half-way
                if part.thread is not threading.current_thread():
                    part.thread.join(max(0.0, deadline - time.monotonic()))
                    if part.thread.is_alive():
                        log.warning("%s is still busy after stop()", part.thread.name)
        finally:
            if unblocker >= 0:
                os.close(unblocker)

    def _failed(self, where: str, error: BaseException) -> None:
        """What a server thread could not handle ends in a logged, clean stop, never in a
        thread that died while the server looks alive."""
        self._note_failure(where, error)
        self.stop()

    def _note_failure(self, where: str, error: BaseException) -> None:
        """Log the first failure of a running server and keep it in stats.error."""
        with self._state_lock:
            first = self.stats.error is None and self._state == "running"
            if first:
                self.stats.error = f"{where} raised {error!r}"
        if first:
            log.error("%s raised %r: the server stops", where, error, exc_info=error)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server is stopped; False if the timeout came first."""
        return self._stopped.wait(timeout)

    def on_stop(self) -> None:
        """Called once after the server has stopped, from the thread that stopped it."""

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # pipe-io-server 1.0.x servers were threads; code written against that keeps working.

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def daemon(self) -> bool:
        """Accepted and ignored: the server's threads never keep the process alive."""
        return self._daemon

    @daemon.setter
    def daemon(self, value: bool) -> None:
        self._daemon = bool(value)

    @property
    def ident(self) -> int | None:
        """The ident of the server's first thread once started, as a Thread's ident."""
        part = self._reader or self._writer
        return None if part is None else part.thread.ident

    @property
    def native_id(self) -> int | None:
        part = self._reader or self._writer
        return None if part is None else part.thread.native_id

    def is_alive(self) -> bool:
        """Started and not stopped."""
        return self._state == "running"

    def join(self, timeout: float | None = None) -> None:
        """Wait until the server has stopped, like wait()."""
        self.wait(timeout)

    def run(self) -> None:
        """The body of 1.0.x's server thread: wait until the server stops."""
        self.wait()

    def getName(self) -> str:  # noqa: N802 (threading's old spelling)
        return self.name

    def setName(self, name: str) -> None:  # noqa: N802
        self.name = name

    def isDaemon(self) -> bool:  # noqa: N802
        return self.daemon

    def setDaemon(self, daemonic: bool) -> None:  # noqa: N802
        self.daemon = daemonic

    # Dispatch (the reader thread).

    def _dispatch(self, messages: list[bytes]) -> None:
        handler = self.handle_message  # type: ignore[attr-defined]
        # The replies to the messages of one read are collected and written together.
        batch = self._writer if len(messages) > 1 else None
        if batch is not None:
            batch.cork()
        remaining = iter(messages)
        try:
            for message in remaining:
                if self._halting:
                    self._not_handled(1 + sum(1 for _ in remaining))
                    return
                self._in_hand = message
                try:
                    handler(message)
                except Exception as error:
                    self._handler_failed(message, error)
                except BaseException as error:
                    self._not_handled(sum(1 for _ in remaining))
                    self._failed("handle_message", error)
                    return
        finally:
            self._in_hand = None
            if batch is not None:
                batch.uncork()

    def _not_handled(self, count: int) -> None:
        if count:
            self.stats.unhandled_at_stop += count
            log.warning(
                "%d messages read from %s were not handled: the server is stopping",
                count,
                self._in_pipe,
            )

    def _handler_failed(self, message: bytes, error: Exception) -> None:
        if isinstance(error, ServerStopped) and self._halting:
            return  # its reply was counted as dropped at stop; the stop is logged once
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
        **kwargs: Any,
    ) -> None:
        super().__init__(
            in_pipe=in_pipe,
            permissions=permissions,
            manage_pipes=manage_pipes,
            max_message_size=max_message_size,
            max_backlog=max_backlog,
            **kwargs,
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
        if not self._inbox.put(message):
            self.stats.unhandled_at_stop += 1

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
        **kwargs: Any,
    ) -> None:
        super().__init__(
            out_pipe=out_pipe,
            permissions=permissions,
            manage_pipes=manage_pipes,
            max_backlog=max_backlog,
            send_timeout=send_timeout,
            **kwargs,
        )

    @property
    def out_pipe(self) -> str:
        assert self._out_pipe is not None
        return self._out_pipe

    def send_message(self, message: Message) -> None:
        """Queue one message (bytes-like, or str sent as UTF-8) for the current or next reader.

        Raises TypeError for any other type, ValueError if it contains a newline, BacklogFull
        if the outbound backlog stays over max_backlog bytes for send_timeout seconds,
        ServerStopped (a RuntimeError) once stopped.
        """
        assert self._writer is not None
        if type(message) is not bytes or (message is not self._in_hand and LF in message):
            message = encode(message)  # converts it, or refuses its type or its newline
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
        super().__init__(
            in_pipe=in_pipe,
            out_pipe=out_pipe,
            permissions=permissions,
            manage_pipes=manage_pipes,
            max_message_size=max_message_size,
            max_backlog=max_backlog,
            send_timeout=send_timeout,
        )
