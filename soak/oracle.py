"""The checker: what clients wrote and read against what the server handled and sent.

Nothing here trusts either side. Each message carries its identity and checksum; the
writers' and readers' own records (see clients.py) say what went into and came out of the
pipes; the recorder's logs say what the handler got and what `send_message` accepted.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .records import Instance, ReaderRecord, Sent, WriterRecord

# resources.Shortage: "WHAT: STRERROR; retrying until it is back", "WHAT: back after N s"
_SHORT = re.compile(r"(.*): ([^:;]*); retrying until it is back$")
_BACK = re.compile(r"(.*): back after [\d.]+ s$")
_DISCARD = re.compile(r"discarded (a message|an unterminated tail) of (\d+) bytes")


def _own(ref: str) -> bool:
    """A message the recorder sent on its own (a flood's, a mark), not an echo."""
    return ref.startswith(("f", "mark"))


class Oracle:
    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.writers: dict[int, WriterRecord] = {}
        self.readers: list[ReaderRecord] = []
        self.instances: dict[int, Instance] = {}
        self.violations: list[dict[str, Any]] = []
        self.figures: Counter[str] = Counter()
        self.handled_per_instance: Counter[int] = Counter()  # known once check_inbound ran

    def violation(self, kind: str, detail: str) -> None:
        self.violations.append({"kind": kind, "detail": detail})

    def instance_of(self, ino: int | None, when: float | None) -> Instance | None:
        if ino is None or when is None:
            return None
        for inst in self.instances.values():
            if (
                inst.in_ino == ino
                and inst.created <= when
                and (inst.gone is None or when <= inst.gone)
            ):
                return inst
        return None

    # -- inbound: written whole => handled once, in order; nothing else handled ------------------

    def check_inbound(self, run_dir: Path) -> None:
        handled: dict[int, list[tuple[int, int, int, int, int]]] = defaultdict(list)
        anonymous: dict[int, list[bytes]] = defaultdict(list)  # per instance, in handling order
        per_instance: Counter[int] = Counter()
        for line in (run_dir / "handled.log").read_text().splitlines():
            part = line.split(" ", 3)
            per_instance[int(part[1])] += 1
            if part[0] == "A":
                anonymous[int(part[1])].append(b"" if part[3] == "-" else bytes.fromhex(part[3]))
                continue
            if part[0] == "B":
                self.violation(
                    "fragment or glued message handled",
                    f"instance {part[1]}, handled message #{part[2]}: {json.loads(part[3])}",
                )
                continue
            _, inst, pos, rest = part
            wid, seq, size, crc = map(int, rest.split())
            handled[wid].append((int(inst), int(pos), seq, size, crc))
        self.figures["handled"] = sum(per_instance.values())
        self.handled_per_instance = per_instance
        discards = self._discards(run_dir)
        for wid, entries in sorted(handled.items()):
            self._check_writer_handled(wid, entries)
        for wid, writer in sorted(self.writers.items()):
            self._check_writer_delivered(writer, {e[2] for e in handled.get(wid, [])}, discards)
        for inst_no in sorted(set(self.instances) | set(anonymous)):
            self._check_anonymous_handled(inst_no, anonymous.get(inst_no, []))

    def _check_anonymous_handled(self, inst_no: int, got: list[bytes]) -> None:
        """Anonymous writers run one after another, so the anonymous messages an instance
        handled must be theirs in order, batch by batch, exactly once: all of them, or up to
        a chaos stop. A batch never logged as written may be missing, whole."""
        inst = self.instances.get(inst_no)
        writers = [
            w
            for _, w in sorted(self.writers.items())
            if w.batches and inst is not None and self.instance_of(w.ino, w.opened) is inst
        ]
        at = 0
        cut = False  # handling ended here at a stop: the rest was still in in_pipe
        for writer in writers:
            for batch in writer.batches:
                expected = batch.messages()
                piece = got[at : at + len(expected)]
                where = (
                    f"instance {inst_no}, w{writer.wid} ({batch.kind} flood) messages "
                    f"{batch.first}..{batch.first + batch.count - 1}"
                )
                if not cut and piece == expected:
                    at += len(piece)
                    continue
                ends_here = at + len(piece) == len(got) and piece == expected[: len(piece)]
                if ends_here and (batch.done is None or self._cut_at_stop(inst, batch.done)):
                    at, cut = len(got), True
                    continue
                if batch.done is None:
                    continue  # not written
                if cut or ends_here:
                    self.violation(
                        "message written whole never handled",
                        f"{where}: {len(expected) - len(piece)} of them, written at "
                        f"{batch.done:.3f} (no stop excuses it)",
                    )
                else:
                    first = next(i for i in range(len(piece)) if piece[i] != expected[i])
                    self.violation(
                        "anonymous messages handled out of place",
                        f"{where}: message {batch.first + first} should be "
                        f"{expected[first]!r}, the server handled "
                        f"{got[at + first] if at + first < len(got) else 'nothing'!r} there",
                    )
                return
        self.figures["anonymous messages checked (inbound)"] += at
        if at < len(got):
            self.violation(
                "anonymous message handled that no writer sent",
                f"instance {inst_no}: {len(got) - at} more than the anonymous writers wrote, "
                f"first {got[at]!r}",
            )

    def _cut_at_stop(self, inst: Instance | None, done: float) -> bool:
        """Written after the last quiet point drained in_pipe, and the server was then
        stopped under load: it may have been unread (or read and not handled) at the stop."""
        return (
            inst is not None
            and not inst.graceful
            and inst.stopped is not None
            and (done > inst.drained)
        )

    def _discards(self, run_dir: Path) -> dict[tuple[int, str], Counter[int]]:
        found: dict[tuple[int, str], Counter[int]] = defaultdict(Counter)
        for line in (run_dir / "events.log").read_text(errors="replace").splitlines():
            match = _DISCARD.search(line)
            if match:
                kind = "oversized" if match.group(1) == "a message" else "tail"
                found[(int(line.split()[1]), kind)][int(match.group(2))] += 1
        return found

    def _check_writer_handled(
        self, wid: int, entries: list[tuple[int, int, int, int, int]]
    ) -> None:
        writer = self.writers.get(wid)
        if writer is None:
            self.violation("handled a message nobody wrote", f"writer w{wid}: {entries[0]}")
            return
        previous = -1
        for inst, pos, seq, size, crc in entries:
            where = f"w{wid}:{seq} ({writer.kind}) handled in instance {inst} as #{pos}"
            sent = writer.messages.get(seq)
            if seq == previous:
                self.violation("message handled twice", where)
            elif seq < previous:
                self.violation("per-writer order broken", f"{where} after w{wid}:{previous}")
            previous = max(previous, seq)
            if sent is None:
                self.violation("handled a message its writer never started", where)
            elif (sent.size, sent.crc) != (size, crc):
                self.violation("handled message differs from the one written", where)
            elif sent.total > self.max_message_size:
                self.violation(
                    "oversized message handled",
                    f"{where}: {sent.total} bytes > max_message_size {self.max_message_size}",
                )
            self.figures["inbound checked"] += 1

    def _excused(self, writer: WriterRecord) -> Instance | None:
        """The writer's server was stopped under load: what was still in in_pipe is lost.

        docs/PROTOCOL.md: unread bytes in in_pipe are not handled at stop(). A message the
        writer finished after stop() began but before the server closed its read end
        counts too; one finished after that could not be (its write fails with EPIPE).
        """
        inst = self.instance_of(writer.ino, writer.opened)
        if inst is not None and not inst.graceful and inst.stopped is not None:
            return inst
        return None

    def _lost_at_stop(self, writer: WriterRecord, sent: Sent) -> bool:
        """Excused, unless in_pipe was drained at a quiet point after it was written."""
        inst = self._excused(writer)
        return inst is not None and (sent.done or 0.0) > inst.drained

    def _check_writer_delivered(
        self,
        writer: WriterRecord,
        handled: set[int],
        discards: dict[tuple[int, str], Counter[int]],
    ) -> None:
        last_handled = max(handled, default=-1)
        for sent in writer.messages.values():
            if sent.done is None:
                self.figures["uncertain (writer killed mid-write)"] += 1
                continue
            where = f"w{writer.wid}:{sent.seq} ({writer.kind}, {sent.total} bytes)"
            inst = self.instance_of(writer.ino, writer.opened)
            if sent.total > self.max_message_size:
                bucket = discards[(inst.inst if inst else -1, "oversized")]
                if bucket[sent.total] > 0:
                    bucket[sent.total] -= 1
                    self.figures["oversized discarded as expected"] += 1
                elif self._excused(writer) is None:
                    self.violation(
                        "oversized message not reported",
                        f"{where}: no 'discarded a message of {sent.total} bytes' in instance "
                        f"{inst.inst if inst else '?'}",
                    )
                continue
            if sent.seq in handled:
                continue
            if sent.seq < last_handled:
                self.violation(
                    "message written whole never handled",
                    f"{where}: lost while w{writer.wid}:{last_handled} was handled",
                )
            elif self._lost_at_stop(writer, sent):
                self.figures["lost at a chaos stop (unread in in_pipe)"] += 1
            else:
                self.violation(
                    "message written whole never handled",
                    f"{where}, written at {sent.done:.3f}, instance "
                    f"{inst.inst if inst else '?'} (no stop excuses it)",
                )
        self._check_discards_reported(writer, discards)

    def _check_discards_reported(
        self, writer: WriterRecord, discards: dict[tuple[int, str], Counter[int]]
    ) -> None:
        """A tail left on purpose and an endless line must each show in the server's log."""
        inst = self.instance_of(writer.ino, writer.opened)
        key = inst.inst if inst else -1
        if writer.tail is not None and writer.ended == "C":
            bucket = discards[(key, "tail")]
            if bucket[writer.tail] > 0:
                bucket[writer.tail] -= 1
                self.figures["tails discarded as expected"] += 1
            elif self._excused(writer) is None:
                self.violation(
                    "unterminated tail not reported",
                    f"w{writer.wid} closed after {writer.tail} bytes of a message; no matching "
                    f"'discarded an unterminated tail' in instance {key}",
                )
        if writer.line is not None and writer.ended == "C":
            bucket = discards[(key, "oversized")]
            if bucket[writer.line] > 0:
                bucket[writer.line] -= 1
                self.figures["endless lines discarded as expected"] += 1
            elif self._excused(writer) is None:
                self.violation(
                    "endless line not reported",
                    f"w{writer.wid}: line of {writer.line} bytes, no matching discard in {key}",
                )

    # -- outbound: every reader took a contiguous run, redelivery leaves no gap or repeat -------

    def check_outbound(self, run_dir: Path) -> None:
        sent: dict[int, list[tuple[int, int, str, bool]]] = defaultdict(list)
        handler_errors: Counter[int] = Counter()  # what the server counts as such
        unechoed: Counter[int] = Counter()  # handled, but the echo raised
        refused: Counter[int] = Counter()  # sends refused because the server had stopped
        echoes: Counter[int] = Counter()
        for line in (run_dir / "sent.log").read_text().splitlines():
            part = line.split()
            inst = int(part[1])
            if part[0] == "E":
                stopped = part[3] == "ServerStopped"
                refused[inst] += stopped
                if not _own(part[2]):
                    unechoed[inst] += 1
                    # docs/PROTOCOL.md: a reply refused at stop() counts as dropped at stop.
                    handler_errors[inst] += not stopped
                continue
            seq, ref, size, crc = int(part[2]), part[3], int(part[4]), int(part[5])
            if seq != len(sent[inst]):
                self.violation("recorder out of order", line)
            sent[inst].append((size, crc, ref, part[6:] == ["a"]))
            echoes[inst] += not _own(ref)
        for reader in self.readers:
            for bad in reader.bad:
                self.violation(
                    "fragment or glued message read",
                    f"reader r{reader.rid} ({reader.kind}{', killed' if reader.killed else ''}): "
                    f"{bad}",
                )
        owners = [self._reader_instance(reader) for reader in self.readers]
        for inst_no, instance in sorted(self.instances.items()):
            self._check_instance_outbound(instance, sent.get(inst_no, []), refused[inst_no], owners)
            stats = instance.stats
            if stats is None:
                continue
            self._check_stats(instance, stats, len(sent.get(inst_no, [])), handler_errors[inst_no])
            missing = self.handled_per_instance.get(inst_no, 0) - echoes[inst_no]
            if missing != unechoed[inst_no]:
                self.violation(
                    "handled message neither echoed nor failed",
                    f"instance {inst_no}: {missing} not echoed, {unechoed[inst_no]} echoes raised",
                )

    def _check_stats(
        self, instance: Instance, stats: dict[str, Any], sent: int, handler_errors: int
    ) -> None:
        inst_no = instance.inst
        handled = self.handled_per_instance.get(inst_no, 0)
        checks = {
            # Messages read but cut off by stop() count as received, not handled.
            "received": handled + stats["unhandled_at_stop"],
            "sent": sent,
            "handler_errors": handler_errors,
        }
        for name, expected in checks.items():
            if stats[name] != expected:
                self.violation(
                    "server stats disagree with what happened",
                    f"instance {inst_no}: stats.{name} = {stats[name]}, observed {expected} "
                    f"({'graceful' if instance.graceful else 'stopped under load'}; {stats})",
                )
        if stats["unhandled_at_stop"] and instance.graceful:
            self.violation(
                "messages cut off by a stop with nothing in flight",
                f"instance {inst_no}: stats.unhandled_at_stop = {stats['unhandled_at_stop']} "
                f"after every client had gone and in_pipe was drained",
            )
        if stats["error"] is not None:
            self.violation(
                "the server stopped itself", f"instance {inst_no}: stats.error = {stats['error']}"
            )

    def _reader_instance(self, reader: ReaderRecord) -> int:
        """The instance a reader was served by: the one its framed messages name, or the one
        running when it opened (a reader that took only anonymous messages)."""
        named = sorted({t[0] for t in reader.taken if t[0] >= 0})
        if len(named) > 1:
            self.violation(
                "a reader got messages of two server instances",
                f"reader r{reader.rid} ({reader.kind}): instances {named}",
            )
        if named:
            return named[0]
        for inst in self.instances.values():
            if inst.created <= reader.opened and (inst.gone is None or reader.opened <= inst.gone):
                return inst.inst
        return -1

    def _not_sent(self, where: str, name: str, anonymous: bool, size: int, crc: int) -> None:
        if anonymous:
            self.violation(
                "anonymous message read out of place",
                f"{where}: {size} bytes (CRC {crc:08x}) where {name} was due",
            )
        else:
            self.violation("read a message the server did not send", f"{where}: {name}")

    def _check_instance_outbound(
        self,
        inst: Instance,
        sent: list[tuple[int, int, str, bool]],
        refused: int,
        owners: list[int],
    ) -> None:
        """Readers, in the order they took turns, must have read 0, 1, 2, ... with no gap,
        no repeat and no swap; each message exactly as send_message accepted it. A framed
        message names its place; an anonymous one takes the place after the last message
        read, which must be an anonymous message with the same bytes."""
        seen: set[int] = set()
        highest = -1
        for reader, owner in zip(self.readers, owners):
            where = f"reader r{reader.rid} ({reader.kind}{', killed' if reader.killed else ''})"
            place = highest + 1
            for got_inst, seq, size, crc in reader.taken:
                anonymous = got_inst < 0
                if (owner if anonymous else got_inst) != inst.inst:
                    continue
                if not anonymous:
                    place = seq
                due = sent[place] if place < len(sent) else None
                name = f"o{inst.inst}:{place} ({due[2] if due else '?'})"
                if due is None or due[:2] != (size, crc) or due[3] != anonymous:
                    self._not_sent(where, name, anonymous, size, crc)
                elif place in seen:
                    self.violation(
                        "message delivered twice",
                        f"{where}: {name} again, after o{inst.inst}:{highest}",
                    )
                elif place < highest:
                    self.violation(
                        "messages delivered out of order",
                        f"{where}: {name} after o{inst.inst}:{highest} "
                        f"({sent[highest][2]}), though send_message accepted it first",
                    )
                kind = "anonymous messages checked (outbound)" if anonymous else "outbound checked"
                self.figures[kind] += 1
                seen.add(place)
                highest = max(highest, place)
                place += 1
        lost = [n for n in range(highest + 1) if n not in seen]
        if lost:
            self.violation(
                "message lost on the way out",
                f"instance {inst.inst}: {len(lost)} sent messages before o{inst.inst}:{highest} "
                f"never reached a reader whole, first o{inst.inst}:{lost[0]} ({sent[lost[0]][2]})",
            )
        expected = highest + 1
        self.figures["sent"] += len(sent)
        left = len(sent) - expected
        # Counted as dropped at stop: sends refused once stopping, and accepted messages
        # that never reached the pipe (a subset of those no reader took).
        dropped = (inst.stats or {}).get("dropped_at_stop", 0) - refused
        if left and inst.graceful:
            self.violation(
                "sent messages never delivered",
                f"instance {inst.inst}: {left} of {len(sent)} after a full drain",
            )
        elif not 0 <= dropped <= left:
            self.violation(
                "dropped_at_stop disagrees with what was not delivered",
                f"instance {inst.inst}: stats.dropped_at_stop {dropped + refused}, of which "
                f"{refused} sends refused at stop; {left} accepted and not delivered",
            )
        else:
            self.figures["undelivered at a chaos stop"] += left

    # -- the server's own log --------------------------------------------------------------

    def check_events(self, run_dir: Path) -> None:
        """Warnings the soak's clients must never cause, and shortages logged once each."""
        short: dict[tuple[str, str], str] = {}  # (instance, what) -> the line that began it
        for line in (run_dir / "events.log").read_text(errors="replace").splitlines():
            _, inst, _, message = line.split(" ", 3)
            if "a new reader took over" in message:
                # Readers take turns without overlapping; a renewed out_pipe cannot be joined.
                self.violation("server saw a reader take over mid-stream", line)
            elif "is still busy after stop()" in message:
                self.violation("server thread still busy after stop()", line)
            elif match := _SHORT.match(message):
                key = (inst, match.group(1))
                if key in short:
                    self.violation(
                        "a shortage logged more than once", f"{short[key]}\nthen: {line}"
                    )
                short[key] = line
                self.figures["fd shortages the server logged"] += 1
            elif match := _BACK.match(message):
                if short.pop((inst, match.group(1)), None) is None:
                    self.violation("a shortage ended that never began", line)
                self.figures["fd shortages the server logged as over"] += 1
