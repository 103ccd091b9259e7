"""Messages waiting for a consumer, bounded so a slow consumer slows the client down.

It holds what recv_message() has not taken yet, what `serve --exec` has not yet written
to its command, and what the asyncio face has not handed out yet. The messages of one
put_many() stay together as a group, so that a consumer that cannot block (a coroutine)
takes a whole read's worth with one lock and is told when more arrives instead of waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from .framing import MESSAGE_OVERHEAD


def _cost(messages: deque[bytes] | list[bytes]) -> int:
    return sum(map(len, messages)) + len(messages) * MESSAGE_OVERHEAD


def _call(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class Inbox:
    def __init__(self, max_bytes: int | None) -> None:
        # In order, none empty: what one put_many() queued, and the put() messages after it.
        self._groups: deque[deque[bytes]] = deque()
        self._cost = 0  # payload plus MESSAGE_OVERHEAD per message
        self._max_bytes = max_bytes
        self._closed = False
        self._changed = threading.Condition()
        self._watchers: list[Callable[[], None]] = []

    def put(self, message: bytes, timeout: float | None = None) -> bool:
        """Queue a message, waiting while the inbox is full (the pipe then pushes back).

        False, and the message not queued, once closed or after `timeout` seconds.
        """
        cost = len(message) + MESSAGE_OVERHEAD
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            limit = self._max_bytes
            while limit is not None and self._cost and self._cost + cost > limit:
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._closed or (remaining is not None and remaining <= 0):
                    return False
                self._changed.wait(remaining)
            if self._closed:
                return False
            if self._groups:
                self._groups[-1].append(message)  # a deque per message would cost ten times more
                ready = self._added(cost)
            else:
                ready = self._add(deque((message,)), cost)
        _call(ready)
        return True

    def put_many(self, messages: list[bytes]) -> int:
        """Queue messages in order, each as put() would (waiting for room); returns how many
        were queued: all of them unless the inbox was closed meanwhile."""
        queued = 0
        while queued < len(messages):
            with self._changed:
                if self._closed:
                    break
                rest = messages[queued:] if queued else messages
                cost = _cost(rest)
                limit = self._max_bytes
                if limit is None or self._cost + cost <= limit:
                    fitting = len(rest)
                else:
                    fitting = self._fitting(rest, limit - self._cost)
                    if not fitting:
                        self._changed.wait()
                        continue
                    rest = rest[:fitting]
                    cost = _cost(rest)
                ready = self._add(deque(rest), cost)
            queued += fitting
            _call(ready)
        return queued

    def _fitting(self, messages: list[bytes], room: int) -> int:
        """How many of `messages` fit in `room` bytes (one at least, into an empty inbox)."""
        count = 0
        for message in messages:
            room -= len(message) + MESSAGE_OVERHEAD
            if room < 0:
                break
            count += 1
        return count or (0 if self._cost else 1)

    def _add(self, group: deque[bytes], cost: int) -> list[Callable[[], None]]:
        self._groups.append(group)
        return self._added(cost)

    def _added(self, cost: int) -> list[Callable[[], None]]:
        """Count what was queued (lock held); returns the watchers to call once it is not."""
        self._cost += cost
        self._changed.notify_all()
        ready, self._watchers = self._watchers, []
        return ready

    def get(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._groups:
                if self._closed:
                    raise EOFError("the server is stopped and every received message was taken")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no message arrived within {timeout} s")
                self._changed.wait(remaining)
            group = self._groups[0]
            message = group.popleft()
            if not group:
                self._groups.popleft()
            self._cost -= len(message) + MESSAGE_OVERHEAD
            self._changed.notify_all()
            return message

    def take(self, when_ready: Callable[[], None] | None = None) -> deque[bytes] | None:
        """The oldest group of messages, without waiting; the caller owns it.

        None when nothing waits; then `when_ready`, if given, is called once (from the thread
        that puts or closes: it must not block) when that changes.
        Raises EOFError once closed and empty.
        """
        with self._changed:
            if self._groups:
                group = self._groups.popleft()
                self._cost -= _cost(group)
                self._changed.notify_all()
                return group
            if self._closed:
                raise EOFError("the server is stopped and every received message was taken")
            if when_ready is not None:
                self._watchers.append(when_ready)
            return None

    def forget(self, when_ready: Callable[[], None]) -> None:
        """Withdraw a take()'s `when_ready` that has not been called."""
        with self._changed:
            if when_ready in self._watchers:
                self._watchers.remove(when_ready)

    def close(self) -> int:
        """No more puts; gets drain what is queued. Returns how many messages are queued."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            ready, self._watchers = self._watchers, []
            queued = sum(map(len, self._groups))
        _call(ready)
        return queued
