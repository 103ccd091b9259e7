"""Outbound bookkeeping, free of I/O: which messages wait, which sit in the pipe, which were taken.

The writer reports how many bytes it wrote and, from FIONREAD, how many of them are still
unread in the pipe. From that alone this class knows which messages a reader took whole,
so a reader that leaves midway costs nothing: every message it did not finish is queued
again, whole and in order, for the next reader.

Messages travel in units (what one dispatch batch sent, what one write carried), and what is
in flight is kept as the framed bytes that were written: a departure finds the first message
not taken whole with one backward search for a newline, and counts messages with
bytes.count, so its cost grows with the number of units, never with the number of messages.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from .framing import LF, MESSAGE_OVERHEAD, NEWLINE

# Small messages are joined into one write of about this size; larger ones go out as is.
BATCH_BYTES = 64 * 1024
# Messages pushed together beyond this are kept in groups of about BATCH_BYTES, so that no
# thread joins a huge group at once, holding the writer's lock and the interpreter meanwhile.
SPLIT_BYTES = 4 * BATCH_BYTES


class BacklogFull(Exception):
    """send_message() could not queue a message before its timeout: no reader is keeping up."""


class _Unit(NamedTuple):
    """Framed bytes handed out for writing: `chunks` joined end with a newline."""

    start: int  # stream offset of its first byte
    end: int  # stream offset just past its last newline
    chunks: tuple[bytes, ...]  # one framed blob, or a large message and its newline
    messages: int  # how many


def _cost(payload: int, count: int) -> int:
    return payload + count * MESSAGE_OVERHEAD


def _started(unit: _Unit, skip: int, written: int) -> int:
    """Messages of `unit`, from `skip` bytes into it, whose first byte is before `written`."""
    if written >= unit.end:
        return _count_from(unit, skip)
    relative = written - unit.start
    if relative <= skip:
        return 0
    if len(unit.chunks) > 1:
        return 1  # a large message and its newline: one message, partly written
    blob = unit.chunks[0]
    return blob.count(NEWLINE, skip, relative) + (blob[relative - 1] != LF)


def _count_from(unit: _Unit, skip: int) -> int:
    return unit.messages if not skip else unit.chunks[0].count(NEWLINE, skip)


class Backlog:
    def __init__(self) -> None:
        self._waiting: deque[list[bytes]] = deque()  # messages not framed yet, in groups
        # Units that a departed reader did not take whole, framed as they were; they go out
        # again, in order, before _waiting.
        self._again: deque[tuple[tuple[bytes, ...], int]] = deque()
        self.waiting_cost = 0  # of everything not yet handed out: payload + overhead each
        self._inflight: deque[_Unit] = deque()  # handed out and not known to be taken whole
        self._out: list[memoryview] = []
        self._planned = 0  # stream offset at the end of what was handed out for writing
        self._written = 0  # stream offset written to the current reader's pipe
        self._released = 0  # stream offset at the end of the last unit taken whole

    def __len__(self) -> int:
        """Messages held: waiting, or in flight and not known to be taken."""
        waiting = sum(map(len, self._waiting)) + sum(count for _, count in self._again)
        return waiting + sum(unit.messages for unit in self._inflight)

    @property
    def pending(self) -> bool:
        """True while bytes wait to be written."""
        return bool(self._out or self._again or self._waiting)

    @property
    def reclaimable(self) -> int:
        """Bytes kept for redelivery that acknowledge() might free now.

        None until the oldest message kept is wholly in the pipe: before that, asking the
        pipe (FIONREAD, which waits on the pipe's lock while the reader copies) is wasted.
        """
        inflight = self._inflight
        if inflight and inflight[0].end <= self._written:
            return self._planned - self._released
        return 0

    def push(self, message: bytes) -> None:
        self._waiting.append([message])
        self.waiting_cost += len(message) + MESSAGE_OVERHEAD

    def push_many(self, messages: list[bytes], size: int) -> None:
        """Queue messages whose lengths add up to `size`, keeping them together."""
        self.waiting_cost += _cost(size, len(messages))
        framed = size + len(messages)
        if framed <= SPLIT_BYTES:
            self._waiting.append(messages)
            return
        step = max(1, len(messages) * BATCH_BYTES // framed)
        self._waiting.extend(messages[i : i + step] for i in range(0, len(messages), step))

    def wrote(self, framed: bytes, count: int) -> None:
        """One message went straight to the pipe, `count` bytes of `framed` (it and its
        newline), while nothing else was pending: it is in flight, and its rest writes next."""
        start = self._planned
        self._planned += len(framed)
        self._written += count
        self._inflight.append(_Unit(start, self._planned, (framed,), 1))
        if count < len(framed):
            self._out = [memoryview(framed)[count:]]

    def buffers(self) -> list[memoryview]:
        """The bytes to write next, as buffers for one writev()."""
        if not self._out and (self._again or self._waiting):
            self._refill()
        return self._out

    def _refill(self) -> None:
        if self._again:
            chunks, count = self._again.popleft()
        else:
            chunks, count = self._frame(self._waiting.popleft())
        framed = sum(map(len, chunks))
        self.waiting_cost -= _cost(framed - count, count)
        start, self._planned = self._planned, self._planned + framed
        self._inflight.append(_Unit(start, self._planned, chunks, count))
        self._out = [memoryview(chunk) for chunk in chunks]

    def _frame(self, unit: list[bytes]) -> tuple[tuple[bytes, ...], int]:
        if len(unit) == 1 and (len(unit[0]) >= BATCH_BYTES or not self._waiting):
            # A message alone needs no join; a large one is not even copied to add its LF.
            message = unit[0]
            if len(message) >= BATCH_BYTES:
                return (message, NEWLINE), 1
            return (message + NEWLINE,), 1
        framed = sum(map(len, unit)) + len(unit)
        while self._waiting and framed < BATCH_BYTES:
            group = self._waiting.popleft()
            unit.extend(group)
            framed += sum(map(len, group)) + len(group)
        unit.append(b"")
        blob = NEWLINE.join(unit)
        unit.pop()
        return (blob,), len(unit)

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
        """Forget the units the reader has taken, given the bytes still unread in the pipe."""
        taken = self._written - unread
        inflight = self._inflight
        while inflight and inflight[0].end <= taken:
            self._released = inflight.popleft().end

    def rewind(self, unread: int) -> int:
        """The reader left: queue every message it did not take whole again, in order.

        Returns how many of them had reached the pipe (the redelivered ones).
        """
        self.acknowledge(unread)
        taken = self._written - unread
        redelivered = 0
        again = []
        for number, unit in enumerate(self._inflight):
            skip = 0
            if number == 0 and taken > unit.start and len(unit.chunks) == 1:
                # From the first byte of the message that holds `taken`: it was not taken whole.
                skip = unit.chunks[0].rfind(NEWLINE, 0, taken - unit.start) + 1
            chunks = (unit.chunks[0][skip:],) if skip else unit.chunks
            count = _count_from(unit, skip)
            again.append((chunks, count))
            self.waiting_cost += _cost(sum(map(len, chunks)) - count, count)
            redelivered += _started(unit, skip, self._written)
        self._again.extendleft(reversed(again))  # before units an earlier departure queued
        self._inflight.clear()
        self._out = []
        self._planned = self._written = self._released = 0
        return redelivered

    def clear(self) -> int:
        """Drop everything not yet written; returns how many messages were dropped."""
        dropped = sum(map(len, self._waiting)) + sum(count for _, count in self._again)
        dropped += sum(unit.messages - _started(unit, 0, self._written) for unit in self._inflight)
        self._waiting.clear()
        self._again.clear()
        self.waiting_cost = 0
        self._inflight.clear()
        self._out = []
        return dropped
