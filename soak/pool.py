"""The clients: forked, killed on schedule, reaped, and their records handed to the checker."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from . import clients, stall
from .context import Child, Context
from .gates import Gates
from .records import ReaderRecord, read_reader_buffer, read_writer_log
from .watch import MiB


class Pool:
    def __init__(self, ctx: Context, gates: Gates, pgid: int) -> None:
        self.ctx = ctx
        self.gates = gates
        self.pgid = pgid  # every child joins it, so one killpg ends them all
        self.children: dict[int, Child] = {}
        self.next_id = 0
        self.loop_rates: list[float] = []
        self.stall_exit_seconds: list[float] = []  # serve --exec, from SIGTERM to its end

    def spawn(
        self,
        kind: str,
        roles: set[str],
        limit: float,
        kill_after: float | None = None,
        **extra: Any,
    ) -> Child:
        ctx = self.ctx
        self.next_id += 1
        now = time.monotonic()
        spec: dict[str, Any] = {
            "cid": self.next_id,
            "kind": kind,
            "seed": ctx.args.seed,
            "dir": str(ctx.work),
            "in": ctx.server.in_pipe,
            "out": ctx.server.out_pipe,
            "server_pid": ctx.server.pid,
            "deadline": now + limit,
            "blocking_open": ctx.rng.random() < 0.3,
            "max_message_size": ctx.args.max_message_size,
            "wid": self.next_id,
            "rid": self.next_id,
            "capacity": 96 * MiB,
            **extra,
        }
        pid = os.fork()
        if pid == 0:
            with contextlib.suppress(OSError):
                os.setpgid(0, self.pgid)
            clients.run(spec)
        with contextlib.suppress(OSError):
            os.setpgid(pid, self.pgid)
        kill_at = None if kill_after is None else now + kill_after
        child = Child(
            self.next_id, kind, pid, spec, now, now + limit + 5, kill_at, roles, ctx.restarts
        )
        self.children[pid] = child
        if kind != "drain":
            ctx.ops[kind] += 1
        ctx.trace(f"c{child.cid} {kind} pid {pid} kill_after {kill_after} {extra}")
        if "reader" in roles:
            self.gates.reader_started(child)
            # Readers are checked in the order they connect; they connect one at a time.
            ctx.oracle.readers.append(
                ReaderRecord(child.cid, kind, False, 0, 0.0, [], False, [], 0)
            )
        return child

    def reap(self) -> None:
        now = time.monotonic()
        for pid, child in list(self.children.items()):
            if child.kill_at is not None and now >= child.kill_at and not child.killed:
                child.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            elif now > child.deadline and not child.killed:
                child.killed = child.timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del self.children[pid]
                self.finished(child, status)

    def alive(self, role: str) -> list[Child]:
        return [c for c in self.children.values() if role in c.roles]

    def wait_all(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)

    # -- what a child left behind -----------------------------------------------------------

    def finished(self, child: Child, status: int) -> None:
        ctx = self.ctx
        ctx.trace(f"c{child.cid} {child.kind} ended: status {status}, killed {child.killed}")
        err = ctx.work / f"c{child.cid}.err"
        if err.exists():
            ctx.oracle.violation(f"client {child.kind} failed", err.read_text().strip())
        if child.timed_out:
            ctx.notes[f"client timed out ({child.kind})"] += 1
            if child.restarts == ctx.restarts and child.kind != "drain":
                ctx.oracle.violation(
                    "client stuck with no restart to blame",
                    f"c{child.cid} {child.kind} ran past its deadline: {child.spec}",
                )
        result = ctx.work / f"c{child.cid}.json"
        if result.exists():
            figures = json.loads(result.read_text())
            self.loop_rates.append(figures["opens"] / figures["seconds"])
            ctx.ops[f"{child.kind} opens"] += figures["opens"]
            result.unlink()
        if child.kind == "stall":
            self.stall_finished(child)
        if {"writer", "exclusive"} & child.roles:
            self.writer_finished(child)
        if "reader" in child.roles:
            self.reader_finished(child)
        if "exclusive" in child.roles:
            self.gates.exclusive_ended(child)

    def stall_finished(self, child: Child) -> None:
        ctx = self.ctx
        folder = ctx.work / f"stall{child.cid}"
        try:
            seen = json.loads((folder / "seen.json").read_text())
        except FileNotFoundError:
            return  # killed before it could say (a violation already if it overran)
        found = stall.check(seen)
        for kind, detail in found:
            ctx.oracle.violation(kind, f"episode in {folder}: {detail}")
        if not found:
            shutil.rmtree(folder, ignore_errors=True)
        ctx.faults["CMD stops reading (serve --exec)"] += 1
        figures = ctx.oracle.figures
        figures["serve --exec: echoes of CMD checked"] += seen.get("echoes_due", 0)
        figures["serve --exec: 'reads again' though CMD never read"] += seen.get(
            "read_again_reports", 0
        )
        self.stall_exit_seconds.append(seen.get("exit_seconds") or 0.0)

    def writer_finished(self, child: Child) -> None:
        ctx = self.ctx
        log = ctx.work / f"w{child.cid}.log"
        record = read_writer_log(log, child.cid, child.kind, child.killed)
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        ctx.oracle.writers[child.cid] = record
        unfinished = [m for m in record.messages.values() if m.done is None]
        if child.killed and not child.timed_out:
            ctx.faults["SIGKILL writer"] += 1
            if unfinished and record.tail is None:
                ctx.faults["SIGKILL landed mid-write"] += 1
        if record.tail is not None:
            ctx.faults["writer closed mid-message (tail)"] += 1
        if record.line is not None:
            ctx.faults["endless line without newline"] += 1
        if any(m.total > ctx.args.max_message_size for m in record.messages.values()):
            ctx.faults["oversized message"] += 1

    def reader_finished(self, child: Child) -> None:
        """Its records replace its place in the readers' order: one per session it opened."""
        ctx = self.ctx
        if child.kind == "turns":
            buffers = list(
                itertools.takewhile(
                    Path.exists, (ctx.work / f"r{child.cid}.{n}.buf" for n in itertools.count())
                )
            )
        else:
            buffers = [b for b in [ctx.work / f"r{child.cid}.buf"] if b.exists()]
        records = []
        for number, buffer in enumerate(buffers):
            last = number == len(buffers) - 1
            kind = f"turns, session {number}" if child.kind == "turns" else child.kind
            record = read_reader_buffer(buffer, child.cid, kind, child.killed and last)
            buffer.unlink()
            records.append(record)
            ctx.trace(
                f"c{child.cid} {kind} read {record.bytes} bytes, {len(record.taken)} messages "
                f"{record.taken[:1]}..{record.taken[-1:]}, fragment {record.fragment}"
            )
            ctx.oracle.figures["bytes read by clients"] += record.bytes
            if record.fragment:
                killed = " (killed)" if record.killed else ""
                ctx.faults[f"reader left mid-message{killed}"] += 1
        if child.kind == "turns":
            ctx.faults["reader sessions taking turns 0-5 ms apart"] += len(records)
        if records:
            readers = ctx.oracle.readers
            index = next(i for i, r in enumerate(readers) if r.rid == child.cid)
            readers[index : index + 1] = records
        if child.killed and not child.timed_out:
            ctx.faults["SIGKILL reader"] += 1
        self.gates.reader_ended()
