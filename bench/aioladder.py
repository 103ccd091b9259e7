"""The least an asyncio server pays, step by step: `python -m bench.aioladder STEP IN OUT [SIZE]`.

Each step is an echo on an event loop, from the cheapest shape to the one the asyncio face
offers (`async for` and `await send()`):

  loop   the loop watches IN (add_reader) and its callback reads and writes back: one
         event-loop wake-up per read, no task
  task   the callback hands each read to a task waiting on a future, which writes it back:
         what any `await` of incoming data costs
  iter   the task frames the reads with the server's Decoder and echoes per message through
         an async iterator and an `async def send`: the asyncio face's shape with none of its
         guarantees (no backlog, no redelivery, no stop)

Measured beside our server, its asyncio face and the Python floor
(`make bench SERVERS=aioladder CASES=pingpong,pipelined`),
the steps show what the asyncio face cannot avoid: a face that costs no more than `iter` is
at the limit of its shape. Like pyfloor.py, it prints "ready", sets the pipes' capacity when
told, and waits for a signal after end of file.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque

from pipe_io_server.framing import Decoder

from bench.pyfloor import close_and_wait, open_pipes

STEPS = ["loop", "task", "iter"]
READ_SIZE = 1024 * 1024


def _write(sink: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(sink, view) :]


class Reads:
    """What the loop's reader callback read, for a task to await."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: int, framed: bool) -> None:
        self._loop, self._source = loop, source
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._decoder = Decoder(None, read_size=READ_SIZE) if framed else None
        self.ready: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        loop.add_reader(source, self._on_readable)

    def _on_readable(self) -> None:
        decoder = self._decoder
        if decoder is None:
            count = os.readv(self._source, [self._buffer])
            if count:
                self.ready.append(bytes(self._buffer[:count]))
        else:
            count = os.readv(self._source, [decoder.get_buffer()])
            if count:
                self.ready.extend(decoder.buffer_updated(count))
        if not count:
            self._ended = True
            self._loop.remove_reader(self._source)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Reads:
        return self

    async def __anext__(self) -> bytes:
        ready = self.ready
        while not ready:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            await self._waiter
        return ready.popleft()


async def echo(step: str, source: int, sink: int) -> None:
    loop = asyncio.get_running_loop()
    if step == "loop":
        ended = loop.create_future()
        buffer = memoryview(bytearray(READ_SIZE))

        def on_readable() -> None:
            count = os.readv(source, [buffer])
            if count:
                _write(sink, buffer[:count])
            else:
                loop.remove_reader(source)
                ended.set_result(None)

        loop.add_reader(source, on_readable)
        await ended
        return
    reads = Reads(loop, source, framed=step == "iter")
    if step == "task":
        async for chunk in reads:
            _write(sink, chunk)
        return
    replies: list[bytes] = []

    async def send(message: bytes) -> None:
        replies.append(message)

    async for message in reads:
        await send(message)
        if not reads.ready:  # a read's replies leave in one write, as ours batches
            replies.append(b"")
            _write(sink, b"\n".join(replies))
            replies.clear()


def main() -> None:
    step = sys.argv[1]
    if step not in STEPS:
        raise SystemExit(f"unknown step {step!r}: one of {', '.join(STEPS)}")
    source, sink = open_pipes(sys.argv[2:])
    os.set_blocking(source, False)
    asyncio.run(echo(step, source, sink))
    close_and_wait(source, sink)


if __name__ == "__main__":
    main()
