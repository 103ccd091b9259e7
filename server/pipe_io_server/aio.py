"""The asyncio face: `async with`, `async for`, `await send()`, on the server's own parts.

The reader's work runs in the event loop: the loop watches in_pipe and each wake-up calls
Reader.pump(), the threaded server's own reading, framing and reopening, which queues a
read's messages as one group in the intake for `async for`. Sends go to the threaded
server's writer, whose thread serves the readers of out_pipe and keeps every guarantee of
PROTOCOL.md on that side. So a request costs one wake-up of the loop, as it costs the
threaded server one of its reader thread. Nothing waits on the loop thread: a send that
finds the backlog full leaves a callback that the writer thread calls (through
call_soon_threadsafe) when there is room.

Replies sent while the iterator still holds messages of the same read are collected and
written together at the latest when the loop thread returns to its event loop, as the
threaded server does for a batch; a message that arrives alone is answered at once.

Cancellation is safe because a message changes hands only in code that does not suspend:
a cancelled send() queued nothing, a cancelled iteration took nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections import deque
from types import TracebackType
from typing import Any, Callable

from . import resources
from .backlog import BacklogFull
from .framing import DEFAULT_MAX_MESSAGE_SIZE, LF, MESSAGE_OVERHEAD, Message, encode
from .reader import AT_ONCE, READABLE, Reader
from .server import DEFAULT_MAX_BACKLOG, DEFAULT_PERMISSIONS, DEFAULT_SEND_TIMEOUT, PipeIOServer
from .stats import Stats
from .writer import ServerStopped

__all__ = ["AsyncPipeIOServer", "BacklogFull", "ServerStopped"]

# The face returns to the event loop at least this often (seconds) while messages keep
# coming, so that other tasks run even when `async for` and send() never have to wait. The
# clock is read every CHECK_EVERY calls of either: a call costs less than a clock read.
YIELD_AFTER = 0.0005
CHECK_EVERY = 32

_monotonic = time.monotonic

# The most one read of in_pipe takes on the loop: a long message is read a quarter of a pipe's
# capacity per callback (a copy and its page faults, some 0.2 ms), not a whole pipe's worth.
LOOP_READ_BYTES = 256 * 1024


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Callable[[], None]:
    """A callback for another thread that resolves `future` on its loop."""

    def resolve() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, future)

    return resolve


def _cost(messages: deque[bytes] | list[bytes]) -> int:
    return sum(map(len, messages)) + len(messages) * MESSAGE_OVERHEAD


class _Intake:
    """The in_pipe side on the event loop: pumps the reader when the loop sees in_pipe
    readable, and keeps each read's messages, as one group, until the iteration takes it.

    Holding max_backlog bytes or more, it stops watching in_pipe until the iteration takes
    some: the pipe fills and the writing client waits, as the threaded server's bounded
    inbox makes it.
    """

    def __init__(self, max_bytes: int | None, on_error: Callable[[BaseException], None]) -> None:
        self._groups: deque[tuple[deque[bytes], int]] = deque()
        self._cost = 0  # payload plus MESSAGE_OVERHEAD per message
        self._max_bytes = max_bytes
        self._on_error = on_error
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: Reader | None = None
        self._watched = -1  # the descriptor the loop watches for the reader
        self._timer: asyncio.Handle | None = None  # a pump due without readiness
        self._paused: float | None = None  # what the last pump asked for, while full
        self._reads = 0
        self._quiet: asyncio.TimerHandle | None = None
        self._quiet_since = 0
        self.closed = False

    def watch(self, loop: asyncio.AbstractEventLoop, reader: Reader) -> None:
        self._loop, self._reader = loop, reader
        self._follow(READABLE)

    def _pump(self) -> None:
        self._timer = None
        assert self._reader is not None
        try:
            wait = self._reader.pump()
        except Exception as error:
            self.close()
            self._on_error(error)
            return
        self._reads += 1
        if self._quiet is None and resources.quiet_ms() is not None:
            self._arm_quiet()
        self._follow(wait)

    def _follow(self, wait: float) -> None:
        """Arrange the next pump as the reader asked."""
        reader, loop = self._reader, self._loop
        assert reader is not None and loop is not None
        if self.closed:
            return
        if self._full():
            self._unwatch()
            self._paused = wait
        elif wait == READABLE:
            if self._watched != reader.fd:
                self._unwatch()
                loop.add_reader(reader.fd, self._pump)
                self._watched = reader.fd
        else:
            self._unwatch()
            self._timer = (
                loop.call_soon(self._pump) if wait == AT_ONCE else loop.call_later(wait, self._pump)
            )

    def _unwatch(self) -> None:
        if self._watched >= 0:
            assert self._loop is not None
            self._loop.remove_reader(self._watched)
            self._watched = -1

    def _full(self) -> bool:
        return self._max_bytes is not None and self._cost > 0 and self._cost >= self._max_bytes

    def _arm_quiet(self) -> None:
        assert self._loop is not None
        self._quiet_since = self._reads
        self._quiet = self._loop.call_later(resources.QUIET_MS / 1000, self._trim_if_quiet)

    def _trim_if_quiet(self) -> None:
        """As the reader thread trims when its poll() times out: after much traffic, quiet."""
        self._quiet = None
        if self._reads == self._quiet_since:
            resources.trim()
        elif resources.quiet_ms() is not None:
            self._arm_quiet()

    def put(self, messages: list[bytes]) -> None:
        cost = _cost(messages)
        self._groups.append((deque(messages), cost))
        self._cost += cost
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _resolve(waiter)

    def take(self) -> deque[bytes] | None:
        """The oldest group, or None if nothing waits; EOFError once closed and empty."""
        if not self._groups:
            if self.closed:
                raise EOFError("the server is stopped and every received message was taken")
            return None
        group, cost = self._groups.popleft()
        self._cost -= cost
        if self._paused is not None and not self._full():
            wait, self._paused = self._paused, None
            self._follow(wait)
        return group

    def waiter(self) -> asyncio.Future[None]:
        """A future resolved when a group arrives or the intake closes."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def forget(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def close(self) -> None:
        """Read no more (on the loop thread); the iteration still takes what is here."""
        if self.closed:
            return
        self.closed = True
        self._unwatch()
        for handle in (self._timer, self._quiet):
            if handle is not None:
                handle.cancel()
        if self._reader is not None:
            self._reader.close()
        self._wake()

    def close_soon(self) -> None:
        """close() from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self.close)
        except RuntimeError:  # the loop is closed: nothing watches in_pipe any more
            if self._reader is not None:
                self._reader.close()

    def drain(self) -> int:
        """Forget what was never taken; returns how many messages that was."""
        left = sum(len(group) for group, _ in self._groups)
        self._groups.clear()
        self._cost = 0
        return left


class _Core(PipeIOServer):
    """The threaded server, whose reader pumps in the loop's callbacks (the intake), and
    whose writer thread takes the loop's batches: the loop thread never waits for its lock
    to release one."""

    def __init__(self, intake: _Intake, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self._writer is not None
        self._writer.patient_senders = False
        self._intake = intake

    def _start_reading(self, reader: Reader) -> None:
        reader.max_read = LOOP_READ_BYTES
        reader.open()
        self._intake.watch(asyncio.get_running_loop(), reader)

    def _prune(self) -> None:
        assert self._writer is not None
        self._writer.prune(wait=False)  # on the loop thread: never wait for the writer

    def _dispatch(self, messages: list[bytes]) -> None:
        self._intake.put(messages)

    def _halt(self) -> None:
        self._intake.close_soon()
        super()._halt()


class AsyncPipeIOServer:
    """Receives from `in_pipe` and sends to `out_pipe`, for asyncio applications.

    The constructor options, guarantees and `stats` are PipeIOServer's. `async for` gives
    the messages (bytes) in order and ends once the server is stopped and every received
    message was taken; `await send()` waits while the outbound backlog is full, up to
    `send_timeout` seconds, then raises BacklogFull.
    """

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
        self._intake = _Intake(max_backlog, self._reader_failed)
        self._core = _Core(
            self._intake,
            in_pipe,
            out_pipe,
            permissions,
            manage_pipes,
            max_message_size=max_message_size,
            max_backlog=max_backlog,
            send_timeout=send_timeout,
        )
        assert self._core._writer is not None
        self._writer = self._core._writer
        self._send_timeout = send_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._local: deque[bytes] = deque()  # taken from the intake, not yet handed out
        # The message last handed out: framed by the reader, so it holds no newline, and
        # sending it on needs no scan (a 16 MiB message costs the loop no memchr).
        self._handed: bytes | None = None
        self._corked = False
        self._calls = 0  # calls of __anext__ and send until the next look at the clock
        self._yield_at = 0.0
        self._stopping: asyncio.Future[None] | None = None
        self._stopper = threading.Thread()  # the thread that stops the server, once started
        self._failing: asyncio.Future[None] | None = None  # the stop a reader error began

    @property
    def in_pipe(self) -> str:
        return self._core.in_pipe

    @property
    def out_pipe(self) -> str:
        return self._core.out_pipe

    @property
    def stats(self) -> Stats:
        return self._core.stats

    # -- Lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving; the server then belongs to the running event loop."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncPipeIOServer.start() needs a running event loop: use `async with`"
            ) from None
        self._core.start()

    async def stop(self) -> None:
        """Stop within a second, off the loop thread; a second call waits for the first.

        The iteration then hands out what was already received and ends; sends raise
        ServerStopped (a RuntimeError).
        """
        self._uncork()
        if self._stopping is None:
            self._intake.close()
            loop = asyncio.get_running_loop()
            self._stopping = loop.create_future()
            self._stopper = threading.Thread(
                target=self._stop_core, args=(loop, self._stopping), name="pipe_io_server stop"
            )
            self._stopper.daemon = True
            self._stopper.start()
        await asyncio.shield(self._stopping)
        while self._stopper.is_alive():  # it has resolved the future: it ends at once
            await asyncio.sleep(0.001)

    def _stop_core(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        try:
            self._core.stop()
        finally:
            _resolver(loop, done)()

    async def __aenter__(self) -> AsyncPipeIOServer:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
        self._abandon()

    def _abandon(self) -> None:
        """Once `async with` is left, what the iteration has not handed out never will be:
        it is counted as unhandled at stop, as the threaded server counts what a stop cuts
        off, and the iteration ends."""
        left = len(self._local)
        self._local.clear()
        self._core._not_handled(left + self._intake.drain())

    def _reader_failed(self, error: BaseException) -> None:
        """An error the reader could not handle: logged, kept in stats.error, and the
        server stops, as the threaded server does."""
        self._core._note_failure("the reader", error)
        self._failing = asyncio.ensure_future(self.stop())

    # -- Receiving --------------------------------------------------------------------------

    def __aiter__(self) -> AsyncPipeIOServer:
        return self

    async def __anext__(self) -> bytes:
        self._calls -= 1
        if self._calls <= 0:
            await self._pause()
        local = self._local
        if not local:
            local = await self._refill()
        message = local.popleft()
        if local and not self._corked:
            self._cork()  # replies to the rest of this read go out together
        self._handed = message
        return message

    async def _refill(self) -> deque[bytes]:
        """Wait for the next group of messages; StopAsyncIteration once stopped and drained."""
        self._uncork()
        if self._loop is None:
            raise RuntimeError("the server is not started: use `async with`")
        intake = self._intake
        try:
            while not self._local:  # another task iterating the server may have refilled it
                group = intake.take()
                if group is None:
                    waiter = intake.waiter()
                    try:
                        await waiter
                    except asyncio.CancelledError:
                        intake.forget(waiter)  # nothing was taken: the next call gets it
                        raise
                    self._yield_at = _monotonic() + YIELD_AFTER
                else:
                    self._local = group
        except EOFError:
            raise StopAsyncIteration from None
        return self._local

    # -- Sending ----------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Queue one message (bytes-like, or str sent as UTF-8) for the current or next reader.

        Waits while the outbound backlog is full, for at most send_timeout seconds, then
        raises BacklogFull. Raises TypeError for another type, ValueError if it contains a
        newline, ServerStopped (a RuntimeError) once stopped. Cancelled, it queued nothing.
        """
        if type(message) is not bytes or (message is not self._handed and LF in message):
            message = encode(message)
        self._calls -= 1
        if self._calls <= 0:
            await self._pause()
        if not self._writer.send(message, False):
            await self._send_when_room(message)

    def send_nowait(self, message: Message) -> None:
        """Queue one message if the backlog has room, from the loop or any other thread,
        without waiting: raises BacklogFull at once otherwise (as asyncio.Queue.put_nowait
        raises QueueFull), and what send() raises for a bad message or once stopped."""
        if type(message) is not bytes or (message is not self._handed and LF in message):
            message = encode(message)
        if not self._writer.send(message, False):
            raise BacklogFull(
                f"outbound backlog is full: no room now for {len(message)} bytes for "
                f"{self.out_pipe}"
            )

    async def _send_when_room(self, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._send_timeout
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            woken = loop.create_future()
            when_room = _resolver(loop, woken)
            if self._writer.send(message, when_room):
                return
            if deadline is not None and loop.time() >= deadline:
                self._writer.forget(when_room)
                raise BacklogFull(
                    f"outbound backlog stayed full for {timeout} s: no reader is taking "
                    f"messages from {self.out_pipe}"
                )
            await self._woken(woken, deadline, when_room)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message sent so far is written into out_pipe (not yet read);
        False if the timeout came first. A stop ends the wait: what was not written then is
        dropped (stats.dropped_at_stop)."""
        self._uncork()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            woken = loop.create_future()
            when_changed = _resolver(loop, woken)
            done = self._writer.written(when_changed)
            if done is not None:
                return done
            if deadline is not None and loop.time() >= deadline:
                self._writer.forget(when_changed)
                return False
            if not await self._woken(woken, deadline, when_changed):
                return False

    async def _woken(
        self, woken: asyncio.Future[None], deadline: float | None, callback: Callable[[], None]
    ) -> bool:
        """Wait for a callback the writer holds, or the deadline; False at the deadline."""
        loop = asyncio.get_running_loop()
        timer = None if deadline is None else loop.call_at(deadline, _resolve, woken)
        try:
            await woken
        finally:
            if timer is not None:
                timer.cancel()
            self._writer.forget(callback)
        return deadline is None or loop.time() < deadline

    # -- Returning to the loop --------------------------------------------------------------

    async def _pause(self) -> None:
        self._calls = CHECK_EVERY
        if _monotonic() >= self._yield_at:
            await asyncio.sleep(0)
            self._yield_at = _monotonic() + YIELD_AFTER

    def _cork(self) -> None:
        assert self._loop is not None
        self._writer.cork()
        self._corked = True
        self._loop.call_soon(self._uncork)

    def _uncork(self) -> None:
        if self._corked:
            self._corked = False
            self._writer.uncork()


async def _echo(args: argparse.Namespace) -> None:
    server = AsyncPipeIOServer(args.in_pipe, args.out_pipe, max_message_size=args.max_message_size)
    async with server:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(
                signum, lambda: stopping.append(asyncio.ensure_future(server.stop()))
            )
        async for message in server:
            with contextlib.suppress(ServerStopped):
                await server.send(message)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipe_io_server.aio IN OUT`: an echo server on the asyncio face."""
    parser = argparse.ArgumentParser(
        prog="python -m pipe_io_server.aio",
        description="An echo server on the asyncio face; SIGTERM or SIGINT stops it.",
    )
    parser.add_argument("in_pipe", metavar="IN")
    parser.add_argument("out_pipe", metavar="OUT")
    parser.add_argument(
        "--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES"
    )
    asyncio.run(_echo(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
