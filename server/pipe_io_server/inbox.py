"""Messages waiting for recv_message(), bounded so a slow consumer slows the client down."""

from __future__ import annotations

import threading
import time
from collections import deque


class Inbox:
    def __init__(self, max_bytes: int | None) -> None:
        self._messages: deque[bytes] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._closed = False
        self._changed = threading.Condition()

    def put(self, message: bytes) -> None:
        """Queue a message; while the inbox is full, wait (the pipe then pushes back)."""
        with self._changed:
            limit = self._max_bytes
            while limit is not None and self._bytes and self._bytes + len(message) > limit:
                if self._closed:
                    return
                self._changed.wait()
            self._messages.append(message)
            self._bytes += len(message)
            self._changed.notify_all()

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
            self._bytes -= len(message)
            self._changed.notify_all()
            return message

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
