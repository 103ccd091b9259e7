"""Self-checking messages: every message says who sent it, its number, its length and its CRC.

A message is `TAG:SEQ:LEN:CRC:BODY` (CRC in 8 hex digits, of BODY). The checker needs to
trust neither the clients nor the server: a fragment or two messages glued together fail
the length or the checksum.
"""

from __future__ import annotations

import random
import zlib
from typing import NamedTuple

NEWLINE = b"\n"
PIPE_BUF = 4096
# Random bodies may hold any byte but the delimiter: CR and NUL included.
_NO_NEWLINE = bytes.maketrans(b"\n", b"\x0b")


class Parsed(NamedTuple):
    tag: str
    seq: int
    size: int
    crc: int
    body: bytes


def body(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size).translate(_NO_NEWLINE)


def header(tag: str, seq: int, body: bytes) -> tuple[bytes, int]:
    crc = zlib.crc32(body)
    return b"%s:%d:%d:%08x:" % (tag.encode(), seq, len(body), crc), crc


def frame(tag: str, seq: int, body: bytes) -> tuple[bytes, int]:
    """The message without its newline, and the CRC of its body."""
    head, crc = header(tag, seq, body)
    return head + body, crc


def header_size(tag: str, seq: int, size: int) -> int:
    return len(b"%s:%d:%d:00000000:" % (tag.encode(), seq, size))


def parse(message: bytes) -> Parsed | None:
    """The fields of a well-formed message, or None for anything else."""
    parts = message.split(b":", 4)
    if len(parts) != 5:
        return None
    tag, seq, size, crc, data = parts
    if not (tag[:1].isalpha() and seq.isdigit() and size.isdigit() and len(crc) == 8):
        return None
    try:
        crc_value = int(crc, 16)
    except ValueError:
        return None
    if len(data) != int(size) or zlib.crc32(data) != crc_value:
        return None
    return Parsed(tag.decode("ascii", "replace"), int(seq), len(data), crc_value, data)


def evidence(message: bytes) -> str:
    """A short, printable picture of a bad message for the report."""
    head = message[:60]
    tail = message[-30:] if len(message) > 90 else b""
    return f"{len(message)} bytes: {head!r}" + (f" ... {tail!r}" if tail else "")


# -- anonymous messages: too short for a frame ----------------------------------------------

ANONYMOUS_MAX = 2  # a line this short cannot be a frame: the checker knows it by its place
ANONYMOUS_KINDS = ("empty", "tiny")


def anonymous(kind: str, k: int) -> bytes:
    """The k-th message of a flood of `kind`: empty, or 1-2 bytes that depend on k (any byte
    but the delimiter), so that a message out of place rarely looks right."""
    if kind == "empty":
        return b""
    mixed = (k * 2654435761) & 0xFFFFFFFF
    size = 1 + (mixed >> 16) % ANONYMOUS_MAX
    return mixed.to_bytes(4, "little")[:size].translate(_NO_NEWLINE)


def anonymous_batch(kind: str, first: int, most: int, room: int) -> tuple[bytes, int]:
    """Messages first, first+1, ... each with its newline, at most `most` of them and as many
    as fit in `room` bytes; and how many."""
    parts = []
    used = count = 0
    while count < most:
        message = anonymous(kind, first + count)
        if used + len(message) + 1 > room:
            break
        parts.append(message + NEWLINE)
        used += len(message) + 1
        count += 1
    return b"".join(parts), count
