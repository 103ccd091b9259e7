"""The server faces the recorder can drive: one class per way of running the server.

A face is one server instance on the soak's two paths. What the recorder and the checker
rely on, whatever runs underneath:
- `handler(message)` is called once per message, in arrival order, one call at a time, and
  may call `send()`; the server may read on meanwhile (the recorder places each end of file
  among the messages by `stats()["received"]` when it is logged);
- `send()` works from the handler and from any other thread (the recorder's flood), waits
  at most send_timeout for backlog room, then raises BacklogFull; once the instance is
  stopping it raises a RuntimeError (ServerStopped) naming the type in sent.log;
- `stop()` returns within a second from any state, the handler is not called after it, and
  no thread whose name starts with "pipe_io_server" is left then; `stats()` gives the
  fields of pipe_io_server.Stats, handler_errors counting what the handler raised but
  ServerStopped at a stop;
- the server logs to the `pipe_io_server` logger with the reference wording ("reader
  connected", "reader left", "all writers left", "discarded ..."), which the gates read.

A new face is a subclass registered in FACES; `python -m soak --face NAME` selects it.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from pipe_io_server import BacklogFull, PipeIOServer
from pipe_io_server.aio import AsyncPipeIOServer, ServerStopped

Handler = Callable[[bytes], None]


class Face(abc.ABC):
    # The queues bounded by max_backlog that the face holds: the outbound backlog, and the
    # inbox of received messages where the handler takes them from one.
    queues = 1

    def __init__(
        self,
        in_pipe: str,
        out_pipe: str,
        *,
        max_message_size: int,
        max_backlog: int,
        send_timeout: float,
        handler: Handler,
    ) -> None:
        self.in_pipe = in_pipe
        self.out_pipe = out_pipe
        self.max_message_size = max_message_size
        self.max_backlog = max_backlog
        self.send_timeout = send_timeout
        self.handler = handler

    @property
    def options(self) -> dict[str, Any]:
        """The server's keyword arguments, whatever the face."""
        return {
            "max_message_size": self.max_message_size,
            "max_backlog": self.max_backlog,
            "send_timeout": self.send_timeout,
        }

    @abc.abstractmethod
    def start(self) -> None:
        """Serve; both FIFOs exist when it returns."""

    @abc.abstractmethod
    def send(self, message: bytes) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]: ...

    @property
    @abc.abstractmethod
    def code(self) -> str:
        """Where the server's code was loaded from, for the summary."""


class ThreadedFace(Face):
    """The reference PipeIOServer: a reader and a writer thread, the handler in the reader's."""

    def start(self) -> None:
        self.server = PipeIOServer(self.in_pipe, self.out_pipe, **self.options)
        self.server.handle_message = self.handler  # type: ignore[method-assign,assignment]
        self.server.start()

    def send(self, message: bytes) -> None:
        self.server.send_message(message)

    def stop(self) -> None:
        self.server.stop()

    def stats(self) -> dict[str, Any]:
        return dataclasses.asdict(self.server.stats)

    @property
    def code(self) -> str:
        return str(Path(sys.modules[PipeIOServer.__module__].__file__ or "?").parent)


START_WAIT = 10.0  # for the asyncio face's loop to have started the server


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncFace(Face):
    """AsyncPipeIOServer, served by an event loop in a thread of its own.

    The loop iterates the server and hands each message to a handler thread, waiting until
    it is handled: the handler and the recorder's floods block (on the recorder's locks,
    for room), which a coroutine may not. Their sends go to the server without waiting
    (`send_nowait`, from their thread) and, when the backlog is full, as `await send()` on
    the loop. The loop thread itself never blocks, so a stop always reaches it.

    The face has no handle_message: the handler's exceptions are counted here, as
    PipeIOServer counts its handler's (a reply refused at stop is none).
    """

    queues = 2

    def start(self) -> None:
        self.server = AsyncPipeIOServer(self.in_pipe, self.out_pipe, **self.options)
        self.handler_errors = 0
        self.halting = False
        self.failure: BaseException | None = None
        self.serving = threading.Event()  # the server has started, or failed to
        self.loop_done = threading.Event()  # no coroutine runs any more
        self.handoff: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self.handling = threading.Thread(
            target=self._handle_all, name="pipe_io_server soak handler", daemon=True
        )
        self.looping = threading.Thread(
            target=self._run, name="pipe_io_server soak loop", daemon=True
        )
        self.handling.start()
        self.looping.start()
        if not self.serving.wait(START_WAIT):
            raise RuntimeError(f"the asyncio face did not start within {START_WAIT:g} s")
        if self.failure is not None:
            raise RuntimeError("the asyncio face could not start") from self.failure

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # start() reports it
            self.failure = error
        finally:
            self.loop_done.set()
            self.serving.set()
            self.handoff.put(None)
            self.handling.join()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        async with self.server:
            self.serving.set()
            async for message in self.server:
                handled = self.loop.create_future()
                self.handoff.put((message, handled))
                await handled
                if self.halting:
                    break  # what the iteration holds is counted as unhandled at stop

    def _handle_all(self) -> None:
        while (item := self.handoff.get()) is not None:
            message, handled = item
            try:
                self.handler(message)
            except ServerStopped:
                pass
            except Exception:  # counted, as PipeIOServer counts them
                self.handler_errors += 1
            finally:
                self.loop.call_soon_threadsafe(_resolve, handled)

    def send(self, message: bytes) -> None:
        server = self.server
        try:
            server.send_nowait(message)
            return
        except BacklogFull:
            pass
        awaited = server.send(message)
        try:
            sending = asyncio.run_coroutine_threadsafe(awaited, self.loop)
        except RuntimeError:  # the loop has closed: the server is stopped
            awaited.close()
            server.send_nowait(message)  # raises ServerStopped, counted as dropped at stop
            return
        while True:
            try:
                sending.result(0.1)
                return
            except concurrent.futures.TimeoutError:
                if not self.loop_done.is_set():
                    continue
            except concurrent.futures.CancelledError:
                pass
            # The loop ended before the send ran: the server is stopped.
            server.send_nowait(message)
            return

    def stop(self) -> None:
        self.halting = True
        if not self.loop_done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop has just closed: stopped
                self.loop.call_soon_threadsafe(self._halt)
        self.looping.join()

    def _halt(self) -> None:
        self.stopping = asyncio.ensure_future(self.server.stop())

    def stats(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.server.stats), "handler_errors": self.handler_errors}

    @property
    def code(self) -> str:
        return str(Path(sys.modules[AsyncPipeIOServer.__module__].__file__ or "?").parent)


FACES: dict[str, type[Face]] = {"threaded": ThreadedFace, "async": AsyncFace}
