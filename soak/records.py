"""What each side left behind, read back: the clients' own records and the server instances.

A writer's log says what it was about to write and what it wrote whole; a reader's buffer
holds every byte it took out of the pipe (see clients.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from . import wire
from .clients import HEADER


@dataclass
class Sent:
    seq: int
    size: int
    crc: int
    total: int
    intent: float
    done: float | None = None


@dataclass
class Batch:
    """Anonymous messages first .. first+count-1 of a flood, in one atomic write."""

    first: int
    count: int
    kind: str
    done: float | None = None

    def messages(self) -> list[bytes]:
        return [wire.anonymous(self.kind, k) for k in range(self.first, self.first + self.count)]


@dataclass
class WriterRecord:
    wid: int
    kind: str
    killed: bool
    ino: int | None = None
    opened: float | None = None
    messages: dict[int, Sent] = field(default_factory=dict)
    tail: int | None = None  # bytes of a message it closed in the middle of, on purpose
    line: int | None = None  # length of its endless line
    line_ended: bool = False  # the endless line got its newline
    ended: str = ""  # C (closed), epipe, noopen, or "" when killed
    batches: list[Batch] = field(default_factory=list)  # of an anonymous writer

    @property
    def last_done(self) -> int:
        return max((m.seq for m in self.messages.values() if m.done is not None), default=-1)


@dataclass
class ReaderRecord:
    rid: int
    kind: str
    killed: bool
    ino: int
    opened: float
    # (instance, outseq, size, crc), in reading order; (-1, -1, size, crc) for an anonymous
    # message, whose instance and outseq follow from its place among the others
    taken: list[tuple[int, int, int, int]]
    fragment: bool  # it left with part of a message read
    bad: list[str]
    bytes: int


@dataclass
class Instance:
    inst: int
    in_ino: int
    created: float
    stopped: float | None = None  # when stop() was called
    gone: float | None = None  # when stop() had returned: its FIFOs were unlinked by then
    drained: float = 0.0  # last quiet point: every message written before was handled
    stop_seconds: float | None = None
    stats: dict[str, int] | None = None
    graceful: bool = False  # stopped after everything was drained: no loss excused


def read_writer_log(path: Path, wid: int, kind: str, killed: bool) -> WriterRecord:
    record = WriterRecord(wid, kind, killed)
    if not path.exists():
        return record
    for line in path.read_text().splitlines():
        part = line.split()
        if part[0] == "O":
            record.ino, record.opened = int(part[1]), float(part[2])
        elif part[0] == "I":
            seq = int(part[1])
            record.messages[seq] = Sent(
                seq, int(part[2]), int(part[3]), int(part[4]), float(part[5])
            )
        elif part[0] == "D":
            record.messages[int(part[1])].done = float(part[2])
        elif part[0] == "F":
            record.batches.append(Batch(int(part[1]), int(part[2]), part[3]))
        elif part[0] == "G":
            record.batches[-1].done = float(part[2])
        elif part[0] == "T":
            record.tail = int(part[2])
        elif part[0] == "L":
            record.line = int(part[1])
        elif part[0] == "N":
            record.line_ended = True
        elif part[0] == "C":
            record.ended = "C"
        elif part[0] == "X":
            record.ended = part[1]
    return record


def read_reader_buffer(path: Path, rid: int, kind: str, killed: bool) -> ReaderRecord:
    with path.open("rb") as f:
        committed, requested, ino, opened = struct.unpack("<QQQd", f.read(HEADER))
        data = f.read(committed + requested)
    lines = data.split(wire.NEWLINE)
    taken: list[tuple[int, int, int, int]] = []
    bad: list[str] = []
    for line in lines[:-1]:
        parsed = wire.parse(line)
        if parsed is not None and parsed.tag[1:].isdigit() and parsed.tag[0] == "o":
            taken.append((int(parsed.tag[1:]), parsed.seq, parsed.size, parsed.crc))
        elif len(line) <= wire.ANONYMOUS_MAX:
            taken.append((-1, -1, len(line), zlib.crc32(line)))
        else:
            bad.append(wire.evidence(line))
    fragment = bool(lines[-1].strip(b"\0"))
    return ReaderRecord(rid, kind, killed, ino, opened, taken, fragment, bad, committed)
