"""Outbound bookkeeping, free of I/O: which messages wait, which sit in the pipe, which were taken.

The writer reports how many bytes it wrote and, from FIONREAD, how many of them are still
unread in the pipe. From that alone this class knows which messages a reader took whole,
so a reader that leaves midway costs nothing: every message it did not finish is queued
again, whole and in order, for the next reader.

Messages travel in groups (what one dispatch batch sent, what one write carried) so that the
per-message work is done by bytes.join and len in C, not by Python loops.
"""

from __future__ import annotations

from collections import deque
from itertools import chain

from .framing import NEWLINE

# Small messages are joined into one write of about this size; larger ones go out as is.
BATCH_BYTES = 64 * 1024


class BacklogFull(Exception):
    """send_message() could not queue a message before its timeout: no reader is keeping up."""


def _framed_size(messages: list[bytes]) -> int:
    return sum(map(len, messages)) + len(messages)


class Backlog:
    def __init__(self) -> None:
        self._waiting: deque[list[bytes]] = deque()
        self.waiting_bytes = 0
        # (stream offset just past the unit's last newline, its messages), oldest first.
        self._inflight: deque[tuple[int, list[bytes]]] = deque()
        self._out: list[memoryview] = []
        self._planned = 0  # stream offset at the end of what was handed out for writing
        self._written = 0  # stream offset written to the current reader's pipe
        self._released = 0  # stream offset at the end of the last unit taken whole

    def __len__(self) -> int:
        groups = chain(self._waiting, (unit for _, unit in self._inflight))
        return sum(map(len, groups))

    @property
    def pending(self) -> bool:
        """True while bytes wait to be written."""
        return bool(self._out or self._waiting)

    @property
    def reclaimable(self) -> int:
        """Bytes kept for redelivery that acknowledge() might free now.

        None until the oldest message kept is wholly in the pipe: before that, asking the
        pipe (FIONREAD, which waits on the pipe's lock while the reader copies) is wasted.
        """
        inflight = self._inflight
        if inflight and inflight[0][0] <= self._written:
            return self._planned - self._released
        return 0

    def push(self, message: bytes) -> None:
        self._waiting.append([message])
        self.waiting_bytes += len(message)

    def push_many(self, messages: list[bytes], size: int) -> None:
        """Queue messages whose lengths add up to `size`, keeping them together."""
        self._waiting.append(messages)
        self.waiting_bytes += size

    def buffers(self) -> list[memoryview]:
        """The bytes to write next, as buffers for one writev()."""
        if not self._out and self._waiting:
            self._refill()
        return self._out

    def _refill(self) -> None:
        unit = self._waiting.popleft()
        if len(unit) == 1 and (len(unit[0]) >= BATCH_BYTES or not self._waiting):
            # A message alone needs no join; a large one is not even copied to add its LF.
            message = unit[0]
            framed = len(message) + 1
            if framed > BATCH_BYTES:
                self._out = [memoryview(message), memoryview(NEWLINE)]
            else:
                self._out = [memoryview(message + NEWLINE)]
        else:
            framed = _framed_size(unit)
            while self._waiting and framed < BATCH_BYTES:
                group = self._waiting.popleft()
                unit.extend(group)
                framed += _framed_size(group)
            unit.append(b"")
            self._out = [memoryview(NEWLINE.join(unit))]
            unit.pop()
        self.waiting_bytes -= framed - len(unit)
        self._planned += framed
        self._inflight.append((self._planned, unit))

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
            self._released = inflight.popleft()[0]

    def rewind(self, unread: int) -> int:
        """The reader left: queue every message it did not take whole again, in order.

        Returns how many of them had reached the pipe (the redelivered ones).
        """
        self.acknowledge(unread)
        taken = self._written - unread
        again: list[bytes] = []
        redelivered = 0
        for end, unit in self._inflight:
            offset = end - _framed_size(unit)
            for message in unit:
                start, offset = offset, offset + len(message) + 1
                if offset > taken:
                    again.append(message)
                    redelivered += start < self._written
        if again:
            self._waiting.appendleft(again)
            self.waiting_bytes += sum(map(len, again))
        self._inflight.clear()
        self._out = []
        self._planned = self._written = self._released = 0
        return redelivered

    def clear(self) -> int:
        """Drop everything not yet written; returns how many messages were dropped."""
        dropped = sum(map(len, self._waiting))
        for end, unit in self._inflight:
            offset = end - _framed_size(unit)
            for message in unit:
                dropped += offset >= self._written
                offset += len(message) + 1
        self._waiting.clear()
        self.waiting_bytes = 0
        self._out = []
        return dropped
