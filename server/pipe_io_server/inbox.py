"""Messages waiting for a consumer, bounded so a slow consumer slows the client down.

It holds what recv_message() has not taken yet, and what `serve --exec` has not yet written
to its command.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from .framing import MESSAGE_OVERHEAD


class Inbox:
    def __init__(self, max_bytes: int | None) -> None:
        self._messages: deque[bytes] = deque()
        self._cost = 0  # payload plus MESSAGE_OVERHEAD per message
        self._max_bytes = max_bytes
        self._closed = False
        self._changed = threading.Condition()

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
            self._messages.append(message)
            self._cost += cost
            self._changed.notify_all()
        return True

    def get(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._messages:
                if self._closed:
                    raise EOFError("the server is stopped and every received message was taken")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no message arrived within {timeout} s")
                self._changed.wait(remaining)
            message = self._messages.popleft()
            self._cost -= len(message) + MESSAGE_OVERHEAD
            self._changed.notify_all()
            return message

    def close(self) -> int:
        """No more puts; gets drain what is queued. Returns how many messages are queued."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            return len(self._messages)
