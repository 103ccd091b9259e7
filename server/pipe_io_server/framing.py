"""The wire format, free of I/O: bytes in, messages out, and back.

A message is any byte string without 0x0A, carried followed by one 0x0A. Keeping this
pure lets the property tests explore every way a stream can be cut into reads.
"""

from __future__ import annotations

import ctypes
import io
import select
from dataclasses import dataclass
from typing import Callable, Union

PROTOCOL_VERSION = "2"
NEWLINE = b"\n"
LF = 0x0A  # `LF in data` is a bare memchr; `NEWLINE in data` costs ten times more
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
# What a queued message costs beyond its payload (the object, its slot in a queue), charged
# by every limit that counts bytes, so that a flood of empty messages fills it too.
MESSAGE_OVERHEAD = 64
PIPE_BUF: int = getattr(select, "PIPE_BUF", 4096)

Message = Union[bytes, bytearray, memoryview, str]


def _blank_bytes() -> Callable[[int], bytes]:
    """A maker of bytes objects whose contents are left unset (CPython's documented
    PyBytes_FromStringAndSize(NULL, n)): a message read in place overwrites every byte it
    keeps, and bytes(n) would first zero the whole buffer, a pass over a multi-MiB message
    made while the interpreter's lock is held."""
    api = getattr(ctypes, "pythonapi", None)
    make = getattr(api, "PyBytes_FromStringAndSize", None)
    if make is None:
        return bytes
    make.restype = ctypes.py_object
    make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    return lambda size: make(None, size)


_blank = _blank_bytes()


def encode(message: Message) -> bytes:
    """Check one outgoing message and return its payload bytes (the newline is added later)."""
    if type(message) is not bytes:  # bytes, the common case, costs one check and one memchr
        if isinstance(message, str):
            message = message.encode("utf-8")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            message = bytes(message)  # a copy: the caller may change its buffer afterwards
        else:
            raise TypeError(
                f"a message is bytes, bytearray, memoryview or str, not {type(message).__name__}"
            )
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

    A reader can instead read into `get_buffer()` and report with `buffer_updated`
    (asyncio's BufferedProtocol shape). Then a long message is read straight into the
    bytes object that the caller finally receives: no chunks, no join, no copy.
    """

    def __init__(
        self, max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE, read_size: int = 65536
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be a non-negative number of bytes or None")
        self.max_message_size = max_message_size
        self.discards: list[Discard] = []
        self._read_buffer = bytearray(read_size)
        self._read_view = memoryview(self._read_buffer)
        self._in_place_from = max(1, read_size // 4)
        # The unterminated message so far. A BytesIO, because getvalue() hands over its own
        # bytes object without a copy, and getbuffer() lets reads land inside that object.
        self._held: io.BytesIO | None = None
        self._capacity = 0  # size of _held's bytes once the message is read in place, else 0
        self._expected = 0  # the last in-place message with its LF: the next is likely alike
        self._export: memoryview | None = None
        self._pending = 0
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes of the unterminated message seen so far."""
        return self._pending

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        return self._scan(data, memoryview(data), len(data))

    def get_buffer(self) -> memoryview:
        """Where the next read should land; valid until buffer_updated() or the next call."""
        if self._export is not None:
            self._release()
        if not self._capacity and (self._skipping or self._expected < self._in_place_from):
            return self._read_view
        # In place: the long message under way, or, after a long one, the next from its start.
        self._reserve(self._pending + 1, self._pending)
        assert self._held is not None
        self._export = self._held.getbuffer()
        return self._export[self._pending :]

    def buffer_updated(self, count: int) -> list[bytes]:
        """`count` bytes were read into the last get_buffer(): return the messages they end."""
        if self._export is None:
            return self._scan(self._read_buffer, self._read_view, count)
        self._release()
        assert self._held is not None
        start = self._pending
        data = self._held.getvalue()  # the held object itself: no view of it is left
        end = data.find(LF, start, start + count)
        rest = data[end + 1 : start + count] if end >= 0 else b""
        del data  # a second reference would make the next write copy the whole message
        if end < 0:
            self._grow(count)
            return []
        self._grow(end - start)
        messages = self._complete()
        messages.extend(self._scan(rest, memoryview(rest), len(rest)))
        return messages

    def close(self) -> None:
        """End of stream: an unterminated tail is dropped and recorded in `discards`."""
        self._release()
        if self._pending or self._skipping:
            self._drop("oversized" if self._skipping else "tail")
        # Nor is a buffer kept ready while idle, nor sized for the next stream from this one.
        self._held, self._capacity, self._expected = None, 0, 0

    def _scan(self, data: bytes | bytearray, view: memoryview, size: int) -> list[bytes]:
        """Frame the first `size` bytes of `data`; `view` is a memoryview of it, to slice."""
        end = data.find(LF, 0, size)
        if end < 0:
            self._hold(view[:size])
            return []
        limit = self.max_message_size
        if end == size - 1 and not self._pending and (limit is None or end <= limit):
            return [bytes(view[:end])]  # one whole message, the request-reply case
        messages: list[bytes] = []
        start = 0
        if self._pending or self._skipping:
            self._hold(view[:end])
            messages = self._complete()
            start = end + 1
        last = data.rfind(LF, start, size)
        if last >= start:
            # One copy and one C-level split for the common case of many short messages.
            run = bytes(view[start:last]).split(NEWLINE)
            # A run shorter than the limit in all cannot hold a message longer than it.
            if limit is not None and last - start > limit and max(map(len, run)) > limit:
                self.discards.extend(Discard("oversized", len(m)) for m in run if len(m) > limit)
                run = [m for m in run if len(m) <= limit]
            messages.extend(run)
            start = last + 1
        if start < size:
            self._hold(view[start:size])
        return messages

    def _hold(self, chunk: memoryview) -> None:
        if not chunk:
            return
        at = self._pending
        if not self._grow(len(chunk)):
            return
        if self._capacity or self._pending >= self._in_place_from:
            self._reserve(self._pending, at)
        elif self._held is None:
            self._held = io.BytesIO()
        assert self._held is not None
        self._held.seek(at)
        self._held.write(chunk)

    def _grow(self, count: int) -> bool:
        """Count `count` more bytes of the message; False once it is being skipped."""
        self._pending += count
        if self._skipping:
            return False
        limit = self.max_message_size
        if limit is not None and self._pending > limit:
            self._held = None
            self._capacity = 0
            self._skipping = True
            return False
        return True

    def _reserve(self, needed: int, kept: int) -> None:
        """Make the held message a bytes object of at least `needed` bytes, first `kept` kept."""
        if needed <= self._capacity:
            return
        capacity = max(needed, 2 * self._capacity, self._expected)
        grown = io.BytesIO(_blank(capacity))  # only bytes that were read are ever handed out
        if self._held is not None and kept:
            with self._held.getbuffer() as old:
                grown.write(old[:kept])
        self._held, self._capacity = grown, capacity

    def _complete(self) -> list[bytes]:
        """The pending message ended: return it, or record it if it was skipped."""
        if self._skipping:
            self._drop("oversized")
            return []
        held, size = self._held, self._pending
        message = b""
        if held is not None:
            if self._capacity:
                held.truncate(size)  # shrinks the bytes object in place, without a copy
                self._expected = size + 1
            message = held.getvalue()
        self._held, self._capacity, self._pending = None, 0, 0
        return [message]

    def _drop(self, reason: str) -> None:
        self.discards.append(Discard(reason, self._pending))
        self._held, self._capacity, self._pending = None, 0, 0
        self._skipping = False

    def _release(self) -> None:
        if self._export is not None:
            self._export.release()
            self._export = None
