"""Outbound bookkeeping, free of I/O: which messages wait, which sit in the pipe, which were taken.

The writer reports how many bytes it wrote and, from FIONREAD, how many of them are still
unread in the pipe. From that alone this class knows which messages a reader took whole,
so a reader that leaves midway costs nothing: every message it did not finish is queued
again, whole and in order, for the next reader.
"""

from __future__ import annotations

from collections import deque

from .framing import NEWLINE

# Small messages are joined into one write of about this size; larger ones go out as is.
BATCH_BYTES = 64 * 1024


class BacklogFull(Exception):
    """send_message() could not queue a message before its timeout: no reader is keeping up."""


class Backlog:
    def __init__(self) -> None:
        self._waiting: deque[bytes] = deque()
        self.waiting_bytes = 0
        # (stream offset just past the message's newline, message), oldest first.
        self._inflight: deque[tuple[int, bytes]] = deque()
        self._out: list[memoryview] = []
        self._planned = 0  # stream offset at the end of what was handed out for writing
        self._written = 0  # stream offset written to the current reader's pipe
        self._acknowledged = 0  # stream offset up to which the reader took everything

    def __len__(self) -> int:
        return len(self._waiting) + len(self._inflight)

    @property
    def pending(self) -> bool:
        """True while bytes wait to be written."""
        return bool(self._out or self._waiting)

    @property
    def unacknowledged(self) -> int:
        """Bytes handed out but not known to be read: what a departed reader could cost."""
        return self._planned - self._acknowledged

    def push(self, message: bytes) -> None:
        self._waiting.append(message)
        self.waiting_bytes += len(message)

    def buffers(self) -> list[memoryview]:
        """The bytes to write next, as buffers for one writev()."""
        if not self._out and self._waiting:
            self._refill()
        return self._out

    def _refill(self) -> None:
        first = self._waiting.popleft()
        if len(first) >= BATCH_BYTES:
            batch = [first]
            self._out = [memoryview(first), memoryview(NEWLINE)]
        else:
            batch = [first]
            size = len(first)
            while self._waiting and size + len(self._waiting[0]) < BATCH_BYTES:
                message = self._waiting.popleft()
                batch.append(message)
                size += len(message)
            batch.append(b"")
            self._out = [memoryview(NEWLINE.join(batch))]
            batch.pop()
        for message in batch:
            self.waiting_bytes -= len(message)
            self._planned += len(message) + 1
            self._inflight.append((self._planned, message))

    def sent(self, count: int) -> None:
        """Record that the first `count` bytes of buffers() reached the pipe."""
        self._written += count
        while count:
            head = self._out[0]
            if count < len(head):
                self._out[0] = head[count:]
                return
            count -= len(head)
            self._out.pop(0)

    def acknowledge(self, unread: int) -> None:
        """Forget the messages the reader has taken, given the bytes still unread in the pipe."""
        taken = self._written - unread
        inflight = self._inflight
        while inflight and inflight[0][0] <= taken:
            inflight.popleft()
        self._acknowledged = max(self._acknowledged, taken)

    def rewind(self, unread: int) -> int:
        """The reader left: queue every message it did not take whole again, in order.

        Returns how many of them had reached the pipe (the redelivered ones).
        """
        self.acknowledge(unread)
        redelivered = sum(
            1 for end, message in self._inflight if end - len(message) - 1 < self._written
        )
        for _, message in reversed(self._inflight):
            self._waiting.appendleft(message)
            self.waiting_bytes += len(message)
        self._inflight.clear()
        self._out = []
        self._planned = self._written = self._acknowledged = 0
        return redelivered

    def clear(self) -> int:
        """Drop everything not yet written; returns how many messages were dropped."""
        dropped = len(self._waiting) + sum(
            1 for end, message in self._inflight if end - len(message) - 1 >= self._written
        )
        self._waiting.clear()
        self.waiting_bytes = 0
        self._out = []
        return dropped
