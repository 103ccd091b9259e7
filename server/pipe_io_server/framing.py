"""The wire format, free of I/O: bytes in, messages out, and back.

A message is any byte string without 0x0A, carried followed by one 0x0A. Keeping this
pure lets the property tests explore every way a stream can be cut into reads.
"""

from __future__ import annotations

import select
from dataclasses import dataclass
from typing import Union

PROTOCOL_VERSION = "2"
NEWLINE = b"\n"
LF = 0x0A  # `LF in data` is a bare memchr; `NEWLINE in data` costs ten times more
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
PIPE_BUF: int = getattr(select, "PIPE_BUF", 4096)

Message = Union[bytes, str]


def encode(message: Message) -> bytes:
    """Check one outgoing message and return its payload bytes (the newline is added later)."""
    if type(message) is not bytes:  # bytes, the common case, costs one check and one memchr
        message = message.encode("utf-8") if isinstance(message, str) else bytes(message)
    if LF in message:
        raise ValueError("a message cannot contain a newline (0x0A): it is the delimiter")
    return message


@dataclass(frozen=True)
class Discard:
    """Bytes that were not a message: reported, never delivered."""

    reason: str  # "tail" (unterminated at end of stream) or "oversized"
    size: int


class Decoder:
    """Split a byte stream into messages, one stream (one run of writers) at a time.

    `feed` returns the complete messages; what cannot become a message is recorded in
    `discards` for the caller to report. An oversized message is dropped as it streams
    in, so memory stays near `max_message_size` however long the line.
    """

    def __init__(self, max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be a non-negative number of bytes or None")
        self.max_message_size = max_message_size
        self.discards: list[Discard] = []
        self._parts: list[bytes] = []
        self._pending = 0
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes of the unterminated message seen so far."""
        return self._pending

    def feed(self, data: bytes) -> list[bytes]:
        start = 0
        end = data.find(NEWLINE)
        if end < 0:
            self._hold(data)
            return []
        messages: list[bytes] = []
        if self._parts or self._skipping:
            self._hold(data[:end])
            if self._skipping:
                self._drop("oversized")
            else:
                messages.append(b"".join(self._parts))
                self._parts.clear()
                self._pending = 0
            start = end + 1
        last = data.rfind(NEWLINE)
        if last >= start:
            # One C-level split for the common case of many short messages in one read.
            messages.extend(data[start:last].split(NEWLINE))
            start = last + 1
        limit = self.max_message_size
        if limit is not None and messages and max(map(len, messages)) > limit:
            kept = [m for m in messages if len(m) <= limit]
            for m in messages:
                if len(m) > limit:
                    self.discards.append(Discard("oversized", len(m)))
            messages = kept
        if start < len(data):
            self._hold(data[start:])
        return messages

    def close(self) -> None:
        """End of stream: an unterminated tail is dropped and recorded in `discards`."""
        if self._parts or self._skipping:
            self._drop("oversized" if self._skipping else "tail")

    def _hold(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._pending += len(chunk)
        if self._skipping:
            return
        limit = self.max_message_size
        if limit is not None and self._pending > limit:
            self._parts.clear()
            self._skipping = True
        else:
            self._parts.append(chunk)

    def _drop(self, reason: str) -> None:
        self.discards.append(Discard(reason, self._pending))
        self._parts.clear()
        self._pending = 0
        self._skipping = False
