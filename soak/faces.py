"""The server faces the recorder can drive: one class per way of running the server.

A face is one server instance on the soak's two paths. What the recorder and the checker
rely on, whatever runs underneath:
- `handler(message)` is called once per message, in arrival order, one call at a time, and
  may call `send()`;
- `send()` works from the handler and from any other thread (the recorder's flood), waits
  at most send_timeout for backlog room, then raises BacklogFull; once the instance is
  stopping it raises a RuntimeError (ServerStopped) naming the type in sent.log;
- `stop()` returns within a second from any state, and no thread whose name starts with
  "pipe_io_server" is left then; `stats()` gives the fields of pipe_io_server.Stats;
- the server logs to the `pipe_io_server` logger with the reference wording ("reader
  connected", "reader left", "all writers left", "discarded ..."), which the gates read.

A new face is a subclass registered in FACES; `python -m soak --face NAME` selects it.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

from pipe_io_server import PipeIOServer

Handler = Callable[[bytes], None]


class Face(abc.ABC):
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
        self.server = PipeIOServer(
            self.in_pipe,
            self.out_pipe,
            max_message_size=self.max_message_size,
            max_backlog=self.max_backlog,
            send_timeout=self.send_timeout,
        )
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


FACES: dict[str, type[Face]] = {"threaded": ThreadedFace}
