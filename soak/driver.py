"""The soak driver: one thread, one loop, many forked clients, one recorded server.

The loop forks clients from a seeded random mix, kills some of them mid-write or
mid-read, restarts the server under them, floods it, and watches its process from /proc.
Two gates keep the clients from triggering the races docs/PROTOCOL.md names on purpose
(a new writer right after one died mid-message, a new reader right after one left
mid-message), so that what the checker finds is the server's fault, not the race's:
- a writer that may leave a tail runs alone, and the next writer starts only after the
  server has seen end of file after that writer's last message;
- readers take turns, and the next one opens only after the server has logged the
  departure of the previous one (by then it has requeued what that reader did not take).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import clients
from .oracle import Instance, Oracle, ReaderRecord, read_reader_buffer, read_writer_log

MiB = 1024 * 1024
GATE_TIMEOUT = 10.0
STOP_PROMISE = 1.0  # docs/PROTOCOL.md guarantee 9


@dataclass
class Child:
    cid: int
    kind: str
    pid: int
    spec: dict[str, Any]
    started: float
    deadline: float
    kill_at: float | None
    roles: set[str]
    restarts: int
    killed: bool = False
    timed_out: bool = False


@dataclass
class Resources:
    base_fds: int = 0
    base_threads: int = 0
    base_rss: int = 0
    max_fds: int = 0
    max_threads: int = 0
    max_rss: int = 0
    base_live: int = 0
    max_live: int = 0
    samples: int = 0
    quiet_checks: int = 0
    quiet_rss: list[int] = field(default_factory=list)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Recorder:
    """The server process and its control socket."""

    def __init__(self, work: Path, args: argparse.Namespace, pgid: int) -> None:
        self.in_pipe = str(work / "in")
        self.out_pipe = str(work / "out")
        control = str(work / "control")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "soak.recorder",
                "--in",
                self.in_pipe,
                "--out",
                self.out_pipe,
                "--control",
                control,
                "--dir",
                str(work),
                "--seed",
                str(args.seed),
                "--max-message-size",
                str(args.max_message_size),
                "--max-backlog",
                str(args.max_backlog),
                "--send-timeout",
                str(args.send_timeout),
            ],
            preexec_fn=functools.partial(os.setpgid, 0, pgid),  # noqa: PLW1509 (one thread)
            stderr=(work / "recorder.err").open("ab"),
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 20
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.socket.connect(control)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the recorder did not start: see recorder.err") from None
                time.sleep(0.02)
        self.socket.settimeout(30)
        self.stream = self.socket.makefile("rwb", buffering=0)

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self.stream.write(json.dumps({"op": op, **args}).encode() + b"\n")
        line = self.stream.readline()
        if not line:
            raise RuntimeError("the recorder died: see recorder.err")
        answer: dict[str, Any] = json.loads(line)
        return answer

    # -- what /proc shows from outside ---------------------------------------------------

    def fds(self) -> list[str]:
        listing = []
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                listing.append(f"{name} -> {os.readlink(f'/proc/{self.pid}/fd/{name}')}")
        return listing

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> list[str]:
        names = []
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip())
        return names

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def write_ends(self, ino: int) -> int:
        """How many write ends of the FIFO with this inode the server holds."""
        count = 0
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                if os.stat(f"/proc/{self.pid}/fd/{name}").st_ino != ino:
                    continue
                flags = Path(f"/proc/{self.pid}/fdinfo/{name}").read_text().split("flags:")[1]
            except (OSError, IndexError):
                continue
            count += int(flags.split()[0], 8) & os.O_ACCMODE == os.O_WRONLY
        return count


class Driver:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.oracle = Oracle(args.max_message_size)
        self.children: dict[int, Child] = {}
        self.ops: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.res = Resources()
        self.next_id = 0
        self.restarts = 0
        self.inst: Instance | None = None
        self.began = time.monotonic()
        # The anchor leads the process group every child joins, so one killpg ends them all.
        self.anchor = subprocess.Popen(
            ["sleep", str(int(args.duration) + 900)],
            preexec_fn=_lead_group,  # noqa: PLW1509 (one thread)
        )
        self.pgid = self.anchor.pid
        self.recorder = Recorder(work, args, self.pgid)
        # Scheduling state.
        self.writer_mode = "shared"  # shared -> drain -> exclusive -> gate -> shared
        self.pending_exclusive: dict[str, Any] | None = None
        self.gate_writer: Child | None = None
        self.gate_since = 0.0
        self.gate_position = -1
        self.reader: Child | None = None
        self.reader_gate_since: float | None = None
        self.next_writer = self.next_reader = self.began
        self.next_restart = self.began + self.rng.uniform(8, 20)
        self.next_flood = self.began + self.rng.uniform(3, 10)
        self.next_quiet = self.began + self.rng.uniform(12, 20)
        self.last_sample = 0.0
        self.flood_number = 0
        self.loop_rates: list[float] = []
        self.last_state: dict[str, Any] = {}
        self.server_path = "?"

    # -- the server -------------------------------------------------------------------------

    def start_server(self) -> None:
        created = time.monotonic()
        answer = self.recorder.ask("start")
        self.server_path = answer["server"]
        self.inst = Instance(answer["inst"], answer["in_ino"], answer["out_ino"], created)
        self.oracle.instances[self.inst.inst] = self.inst
        self.reader_gate_since = None

    def stop_server(self, graceful: bool) -> None:
        assert self.inst is not None
        self.inst.stopped = time.monotonic()
        self.inst.graceful = graceful
        answer = self.recorder.ask("stop")
        self.inst.gone = time.monotonic()
        self.inst.stop_seconds = answer["seconds"]
        self.inst.stats = answer["stats"]
        if answer["seconds"] > STOP_PROMISE:
            self.oracle.violation(
                "stop() took longer than a second",
                f"instance {self.inst.inst}: {answer['seconds']:.3f} s "
                f"({'graceful' if graceful else 'under load'})",
            )

    def restart(self, graceful: bool) -> None:
        self.stop_server(graceful)
        self.restarts += 1
        self.ops["restart (stop, then start on the same paths)"] += 1
        if not graceful:
            self.faults["server restart under load"] += 1
        self.pump_for(self.rng.uniform(0, 0.3))
        self.start_server()

    # -- children ---------------------------------------------------------------------------

    def spawn(
        self,
        kind: str,
        roles: set[str],
        limit: float,
        kill_after: float | None = None,
        **extra: Any,
    ) -> Child:
        self.next_id += 1
        now = time.monotonic()
        spec: dict[str, Any] = {
            "cid": self.next_id,
            "kind": kind,
            "seed": self.args.seed,
            "dir": str(self.work),
            "in": self.recorder.in_pipe,
            "out": self.recorder.out_pipe,
            "deadline": now + limit,
            "blocking_open": self.rng.random() < 0.3,
            "max_message_size": self.args.max_message_size,
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
            self.next_id, kind, pid, spec, now, now + limit + 5, kill_at, roles, self.restarts
        )
        self.children[pid] = child
        if kind != "drain":
            self.ops[kind] += 1
        self.trace(f"c{child.cid} {kind} pid {pid} kill_after {kill_after} {extra}")
        if "reader" in roles:
            self.reader = child
            # Readers are checked in the order they connect; they connect one at a time.
            self.oracle.readers.append(
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

    def finished(self, child: Child, status: int) -> None:
        self.trace(f"c{child.cid} {child.kind} ended: status {status}, killed {child.killed}")
        err = self.work / f"c{child.cid}.err"
        if err.exists():
            self.oracle.violation(f"client {child.kind} failed", err.read_text().strip())
        if child.timed_out:
            self.notes[f"client timed out ({child.kind})"] += 1
            if child.restarts == self.restarts and child.kind != "drain":
                self.oracle.violation(
                    "client stuck with no restart to blame",
                    f"c{child.cid} {child.kind} ran past its deadline: {child.spec}",
                )
        result = self.work / f"c{child.cid}.json"
        if result.exists():
            figures = json.loads(result.read_text())
            self.loop_rates.append(figures["opens"] / figures["seconds"])
            self.ops[f"{child.kind} opens"] += figures["opens"]
            result.unlink()
        if {"writer", "exclusive"} & child.roles:
            self.writer_finished(child)
        if "reader" in child.roles:
            self.reader_finished(child)
        if "exclusive" in child.roles:
            self.gate_writer = child
            self.gate_since = time.monotonic()
            self.writer_mode = "gate"

    def writer_finished(self, child: Child) -> None:
        log = self.work / f"w{child.cid}.log"
        record = read_writer_log(log, child.cid, child.kind, child.killed)
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        self.oracle.writers[child.cid] = record
        unfinished = [m for m in record.messages.values() if m.done is None]
        if child.killed and not child.timed_out:
            self.faults["SIGKILL writer"] += 1
            if unfinished and record.tail is None:
                self.faults["SIGKILL landed mid-write"] += 1
        if record.tail is not None:
            self.faults["writer closed mid-message (tail)"] += 1
        if record.line is not None:
            self.faults["endless line without newline"] += 1
        if any(m.total > self.args.max_message_size for m in record.messages.values()):
            self.faults["oversized message"] += 1

    def reader_finished(self, child: Child) -> None:
        buffer = self.work / f"r{child.cid}.buf"
        index = next(i for i, r in enumerate(self.oracle.readers) if r.rid == child.cid)
        if buffer.exists():
            record = read_reader_buffer(buffer, child.cid, child.kind, child.killed)
            buffer.unlink()
            self.oracle.readers[index] = record
            self.trace(
                f"c{child.cid} read {record.bytes} bytes, {len(record.taken)} messages "
                f"{record.taken[:1]}..{record.taken[-1:]}, fragment {record.fragment}"
            )
            self.oracle.figures["bytes read by clients"] += record.bytes
            if record.fragment:
                killed = " (killed)" if child.killed else ""
                self.faults[f"reader left mid-message{killed}"] += 1
        if child.killed and not child.timed_out:
            self.faults["SIGKILL reader"] += 1
        self.reader = None
        self.reader_gate_since = time.monotonic()

    def alive(self, role: str) -> list[Child]:
        return [c for c in self.children.values() if role in c.roles]

    # -- gates ------------------------------------------------------------------------------

    def reader_gate(self) -> bool:
        """The previous reader is gone and the server has handled its departure.

        The server logs "reader connected" before it writes a byte to a reader and "reader
        left" once it has requeued what that reader did not take and emptied the pipe; so
        when the counts match, a new reader starts on a fresh stream.
        """
        if self.reader is not None:
            return False
        if self.reader_gate_since is None:
            return True
        state = self.recorder.ask("state")
        if state["connections"] == state["departures"]:
            self.reader_gate_since = None
            return True
        if time.monotonic() - self.reader_gate_since > GATE_TIMEOUT:
            self.dump_stacks()
            self.oracle.violation(
                "server did not see a reader leave",
                f"{GATE_TIMEOUT} s after the last reader process ended, the server has logged "
                f"{state['connections']} reader connections and {state['departures']} "
                f"departures; its fds: {self.recorder.fds()}",
            )
            self.reader_gate_since = None
            return True
        return False

    def writer_gate(self) -> bool:
        """The server has seen end of file after the lone writer's last message."""
        child = self.gate_writer
        assert child is not None
        record = self.oracle.writers[child.cid]
        hello = record.messages.get(0)
        inst = self.oracle.instance_of(record.ino, record.opened)
        if hello is None or hello.done is None or inst is None or inst is not self.inst:
            return True  # no risky byte written, or that server is gone with its pipe
        expected = max(
            (
                m.seq
                for m in record.messages.values()
                if m.done is not None and m.total <= self.args.max_message_size
            ),
            default=0,
        )
        seen = self.recorder.ask("writer", writer=child.cid)
        if (
            seen["inst"] == inst.inst
            and seen["seq"] >= expected
            and seen["eofs"] > seen["eofs_then"]
        ):
            return True
        # A handler waiting send_timeout on a full backlog, message after message, is slow,
        # not stuck: only a server that makes no progress at all fails this gate.
        now = time.monotonic()
        if seen["position"] != self.gate_position:
            self.gate_position, self.gate_since = seen["position"], now
        if now - self.gate_since > GATE_TIMEOUT:
            self.dump_stacks()
            self.oracle.violation(
                "no end of file seen after a writer left",
                f"w{child.cid} ({child.kind}) ended and for {GATE_TIMEOUT} s the server handled "
                f"nothing and saw no end of file; it handled up "
                f"to w{child.cid}:{seen['seq']} (needs {expected}) and saw {seen['eofs']} end of "
                f"file events, {seen['eofs_then']} of them before that message: a tail it holds "
                f"would be glued to the next writer's bytes",
            )
            return True
        return False

    # -- the mix ----------------------------------------------------------------------------

    def schedule_writers(self, now: float) -> None:
        rng = self.rng
        if self.writer_mode == "gate":
            if self.writer_gate():
                self.writer_mode = "shared"
                self.gate_writer = None
            return
        if self.writer_mode == "drain":
            if not self.alive("writer"):
                spec = self.pending_exclusive or {}
                kind = spec.pop("kind")
                kill = spec.pop("kill")
                self.spawn(kind, {"exclusive"}, 40, kill, **spec)
                self.writer_mode = "exclusive"
            return
        if self.writer_mode != "shared" or now < self.next_writer:
            return
        self.next_writer = now + rng.expovariate(1 / 0.12)
        roll = rng.random()
        if roll < 0.10:
            kill = rng.uniform(0, 1) if rng.random() < 0.4 else None
            if rng.random() < 0.75:
                self.pending_exclusive = {
                    "kind": "big_writer",
                    "kill": kill,
                    "count": rng.randint(1, 8),
                    "tail": rng.random() < 0.3,
                }
            else:
                self.pending_exclusive = {"kind": "endless_line", "kill": kill}
            self.writer_mode = "drain"
        elif roll < 0.16:
            self.spawn("in_loop", {"loop"}, 5, None, seconds=rng.uniform(0.2, 1.5))
        elif len(self.alive("writer")) < 4:
            kill = rng.uniform(0, 1.0) if rng.random() < 0.2 else None
            self.spawn("small_writer", {"writer"}, 30, kill, count=rng.choice((5, 50, 300)))

    def schedule_reader(self, now: float) -> None:
        rng = self.rng
        if now < self.next_reader or not self.reader_gate():
            return
        roll = rng.random()
        self.next_reader = now + rng.expovariate(1 / 0.05)
        kill = None
        if roll < 0.06:
            self.next_reader = now + rng.uniform(0.3, 2.5)
            self.ops["pause (no reader)"] += 1
            self.faults["pause (no reader)"] += 1
            return
        if roll < 0.12:
            self.spawn("out_loop", {"reader"}, 5, None, seconds=rng.uniform(0.2, 1.5))
            return
        if rng.random() < 0.25:
            kill = rng.uniform(0, 2.0)
        if roll < 0.35 and self.writer_mode == "shared" and len(self.alive("writer")) < 4:
            self.spawn("session", {"writer", "reader"}, 30, kill, count=rng.choice((3, 30, 200)))
        elif roll < 0.50:
            want = rng.randint(1, 300_000)
            self.spawn("reader", {"reader"}, 10, kill, seconds=5, want=want, pause=0)
            self.ops["partial read, then close"] += 1
        elif roll < 0.60:
            seconds = rng.uniform(1, 4)
            self.spawn(
                "reader", {"reader"}, seconds + 10, kill, seconds=seconds, want=1 << 40, pause=0.05
            )
            self.ops["slow reader"] += 1
        else:
            seconds = rng.uniform(0.2, 3)
            self.spawn(
                "reader", {"reader"}, seconds + 10, kill, seconds=seconds, want=1 << 40, pause=0
            )

    def maybe_flood(self, now: float) -> None:
        if now < self.next_flood:
            return
        self.next_flood = now + self.rng.uniform(5, 15)
        self.flood_number += 1
        size = self.rng.choice((100, 3000, 60_000, 400_000))
        count = min(self.rng.randint(50, 3000), (48 * MiB) // size)
        self.recorder.ask("start_flood", number=self.flood_number, count=count, size=size)
        self.ops["flood (a producer faster than its reader)"] += 1
        self.faults["flood"] += 1

    # -- the loop ---------------------------------------------------------------------------

    def sample(self) -> None:
        now = time.monotonic()
        if now - self.last_sample < 0.1:
            return
        self.last_sample = now
        with contextlib.suppress(OSError):
            res = self.res
            fds, threads, rss = (
                self.recorder.fd_count(),
                len(os.listdir(f"/proc/{self.recorder.pid}/task")),
                self.recorder.rss(),
            )
            res.max_fds, res.max_threads = max(res.max_fds, fds), max(res.max_threads, threads)
            res.max_rss = max(res.max_rss, rss)
            res.samples += 1
            if res.samples % 3 == 0:
                res.max_live = max(res.max_live, self.recorder.ask("memory")["live"])

    def pump(self) -> None:
        self.reap()
        self.sample()
        if self.recorder.process.poll() is not None:
            raise RuntimeError("the recorder (server process) died: see recorder.err")

    def pump_for(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.pump()
            time.sleep(0.005)

    def wait_for(self, condition: Callable[[], bool], seconds: float) -> bool:
        until = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > until:
                return False
            self.pump()
            time.sleep(0.005)
        return True

    def run(self) -> None:
        self.start_server()
        self.pump_for(0.3)
        self.res.base_fds = self.recorder.fd_count()
        self.res.base_threads = len(self.recorder.threads())
        self.res.base_rss = self.recorder.rss()
        self.res.base_live = self.recorder.ask("memory")["live"]
        end = self.began + self.args.duration
        while True:
            now = time.monotonic()
            self.pump()
            if now >= end:
                break
            if now >= self.next_quiet:
                self.quiet(graceful_restart=self.rng.random() < 0.4)
                self.next_quiet = time.monotonic() + self.rng.uniform(12, 25)
                continue
            if now >= self.next_restart:
                self.restart(graceful=False)
                self.next_restart = time.monotonic() + self.rng.uniform(10, 25)
            self.schedule_writers(now)
            self.schedule_reader(now)
            self.maybe_flood(now)
            time.sleep(0.003)
        self.quiet(graceful_restart=False, final=True)

    def settle(self) -> None:
        """Let every client finish and both gates open, with nothing new started."""
        self.wait_for(lambda: not self.children, 60)
        if self.writer_mode == "gate":
            self.wait_for(self.writer_gate, 120)
        if self.writer_mode == "drain" and self.pending_exclusive is not None:
            self.pending_exclusive = None
        self.writer_mode = "shared"
        self.gate_writer = None
        self.wait_for(self.reader_gate, GATE_TIMEOUT + 1)
        self.wait_for(lambda: self.recorder.ask("state")["floods"] == 0, 30)

    def dump_stacks(self) -> None:
        """The server's thread stacks go to recorder.err: evidence for a hang."""
        with (self.work / "recorder.err").open("a") as err:
            err.write(f"--- stacks at {time.monotonic():.3f} ---\n")
        os.kill(self.recorder.pid, signal.SIGUSR1)
        time.sleep(0.2)

    def trace(self, text: str) -> None:
        if self.args.verbose:
            print(f"soak: {time.monotonic() - self.began:8.3f} {text}", file=sys.stderr, flush=True)

    def quiet(self, graceful_restart: bool, final: bool = False) -> None:
        """A quiet point: drain everything, then fds and threads must be back to baseline."""
        self.trace("quiet point: settling")
        self.settle()
        settled = time.monotonic()  # every client has ended: nothing is written after this
        self.trace("settled")
        # In_pipe is drained once received stops moving (the handler may wait send_timeout).
        last = -1
        while True:
            position = self.recorder.ask("state")["position"]
            if position == last:
                break
            last = position
            self.pump_for(2 * self.args.send_timeout + 0.3)
        state = self.recorder.ask("state")
        self.trace(f"in_pipe drained: {state}")
        assert self.inst is not None
        self.inst.drained = settled
        inst = self.inst.inst
        taken = max(
            (t[1] for r in self.oracle.readers for t in r.taken if t[0] == inst), default=-1
        )
        if state["outseq"] - 1 > taken:
            assert self.inst is not None
            drain = self.spawn(
                "drain", {"reader"}, 30, None, inst=self.inst.inst, target=state["outseq"] - 1
            )
            self.wait_for(lambda: drain.pid not in self.children, 40)
            self.wait_for(self.reader_gate, GATE_TIMEOUT + 1)
            self.trace(f"drain reader c{drain.cid} done")
            if not any(t[:2] == (inst, state["outseq"] - 1) for t in self.oracle.readers[-1].taken):
                self.dump_stacks()
                self.oracle.violation(
                    "sent messages not delivered to a reader at a quiet point",
                    f"instance {self.inst.inst}: a reader did not get o{self.inst.inst}:"
                    f"{state['outseq'] - 1} within 30 s ({state})",
                )
        self.check_baseline("at a quiet point, every client gone")
        self.last_state = self.recorder.ask("state")
        if final:
            self.stop_server(graceful=True)
        elif graceful_restart:
            self.stop_server(graceful=True)
            self.restarts += 1
            self.ops["restart (stop, then start on the same paths)"] += 1
            self.start_server()
            self.check_baseline("after a restart")

    def check_baseline(self, when: str) -> None:
        """The fds and threads of a server with no client: its own, plus at most one write
        end of out_pipe, which the server may keep across readers."""
        res = self.res
        assert self.inst is not None
        out_ino = self.inst.out_ino
        ok = self.wait_for(
            lambda: (
                self.recorder.fd_count() == res.base_fds + self.recorder.write_ends(out_ino)
                and self.recorder.write_ends(out_ino) <= 1
                and len(self.recorder.threads()) == res.base_threads
            ),
            3,
        )
        res.quiet_checks += 1
        res.quiet_rss.append(self.recorder.rss())
        if not ok:
            self.oracle.violation(
                "fds or threads not back to baseline",
                f"{when}: {self.recorder.fd_count()} fds (baseline {res.base_fds}, "
                f"{self.recorder.write_ends(out_ino)} write ends of out_pipe), "
                f"{len(self.recorder.threads())} threads (baseline {res.base_threads}); "
                f"fds {self.recorder.fds()}; threads {self.recorder.threads()}",
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.recorder.ask("quit")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        for child in self.children.values():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        self.recorder.process.wait(10)
        self.anchor.wait(10)
        for path in (self.recorder.in_pipe, self.recorder.out_pipe):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISFIFO(os.lstat(path).st_mode):
                    os.unlink(path)  # left by a server that did not stop cleanly


def _lead_group() -> None:
    """The anchor's start: lead a new process group (Popen's process_group needs 3.11)."""
    os.setpgid(0, 0)
    clients.die_with_parent()


def live_bound(args: argparse.Namespace, base: int) -> int:
    """What the server may hold at worst: the bound its limits promise, plus small change.

    Inbound: the decoder's parts and their join (2 x max_message_size), the message the
    handler frames for its echo (1 x). Outbound: the backlog (max_backlog), the large
    message being written into the pipe and the pipe's worth not yet read (1 x + 1 MiB).
    One more message for the instants a message exists twice (a join or a copy under
    way); the rest covers pipe-sized read buffers and the recorder's own log buffers.
    """
    return int(base + 5 * args.max_message_size + args.max_backlog + 8 * MiB)


def rss_bound(args: argparse.Namespace, base: int, base_live: int) -> int:
    """RSS also counts what the C allocator keeps after a peak: glibc hands freed heap
    memory back lazily, per thread arena, and the reader, writer and a producer thread
    each allocate message buffers. So three times the live bound: still a bound a leak of
    messages would cross within minutes, not hours."""
    return int(base + 3 * (live_bound(args, base_live) - base_live))


def summary(driver: Driver, seconds: float, bound: int, live: int) -> dict[str, Any]:
    res = driver.res
    oracle = driver.oracle
    return {
        "duration_s": round(seconds, 1),
        "server_code": driver.server_path,
        "seed": driver.args.seed,
        "limits": {
            "max_message_size": driver.args.max_message_size,
            "max_backlog": driver.args.max_backlog,
            "send_timeout": driver.args.send_timeout,
        },
        "operations": dict(sorted(driver.ops.items())),
        "operations_total": sum(v for k, v in driver.ops.items() if not k.endswith("opens")),
        "faults": dict(sorted(driver.faults.items())),
        "server_instances": len(oracle.instances),
        "stop_seconds_max": round(
            max((i.stop_seconds or 0.0) for i in oracle.instances.values()), 3
        ),
        "server_stats": {
            key: sum((i.stats or {}).get(key, 0) for i in oracle.instances.values())
            for key in (
                "received",
                "sent",
                "redelivered",
                "tails_discarded",
                "oversized_discarded",
                "handler_errors",
                "dropped_at_stop",
            )
        },
        "messages": dict(sorted(oracle.figures.items())),
        "flood": {
            "sent": driver.last_state.get("flood_sent", 0),
            "refused_backlog_full": driver.last_state.get("flood_full", 0),
        },
        "open_close_rate_per_s_max": round(max(driver.loop_rates, default=0)),
        "notes": dict(driver.notes),
        "resources": {
            "fds": f"baseline {res.base_fds}, max {res.max_fds}",
            "threads": f"baseline {res.base_threads}, max {res.max_threads}",
            "rss_mib": f"baseline {res.base_rss / MiB:.1f}, max {res.max_rss / MiB:.1f}, "
            f"bound {bound / MiB:.1f}",
            "live_heap_mib": f"baseline {res.base_live / MiB:.1f}, max {res.max_live / MiB:.1f}, "
            f"bound {live / MiB:.1f}",
            "quiet_checks": res.quiet_checks,
            "rss_mib_at_quiet_points": [round(r / MiB, 1) for r in res.quiet_rss],
            "samples": res.samples,
        },
        "violations": len(oracle.violations),
        "violations_by_kind": dict(Counter(v["kind"] for v in oracle.violations)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m soak",
        description="Chaos soak of the reference server: random clients, faults and restarts, "
        "checked message by message.",
    )
    parser.add_argument("--duration", type=float, default=120, help="seconds (default 120)")
    parser.add_argument("--seed", type=int, help="replays the same choices (default: random)")
    parser.add_argument("--max-message-size", type=int, default=4 * MiB)
    parser.add_argument("--max-backlog", type=int, default=8 * MiB)
    parser.add_argument("--send-timeout", type=float, default=0.5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="trace the phases on stderr")
    parser.add_argument(
        "--json", type=Path, help="write the summary here instead of on standard output"
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="pio-soak-"))
    print(f"soak: {args.duration:g} s, seed {args.seed}, work folder {work}", flush=True)
    driver = Driver(args, work)
    try:
        driver.run()
        driver.recorder.ask("flush")
        driver.oracle.check_inbound(work)
        driver.oracle.check_outbound(work)
    finally:
        driver.close()
    seconds = time.monotonic() - driver.began
    res = driver.res
    bound = rss_bound(args, res.base_rss, res.base_live)
    live = live_bound(args, res.base_live)
    if res.max_live > live:
        driver.oracle.violation(
            "memory over its bound",
            f"peak live heap {res.max_live / MiB:.1f} MiB > {live / MiB:.1f} MiB",
        )
    if res.max_rss > bound:
        driver.oracle.violation(
            "memory over its bound",
            f"peak RSS {res.max_rss / MiB:.1f} MiB > {bound / MiB:.1f} MiB",
        )
    report = summary(driver, seconds, bound, live)
    if args.json:
        args.json.write_text(
            json.dumps({**report, "all_violations": driver.oracle.violations}, indent=2)
        )
        print(f"soak: summary in {args.json}")
    else:
        print(json.dumps(report, indent=2))
    if driver.oracle.violations:
        first = driver.oracle.violations[0]
        print(f"FIRST VIOLATION: {first['kind']}\n{first['detail']}", file=sys.stderr)
        for extra in driver.oracle.violations[1:6]:
            print(f"also: {extra['kind']}: {extra['detail'][:300]}", file=sys.stderr)
        print(
            f"soak: {len(driver.oracle.violations)} violations (seed {args.seed}); "
            f"logs kept in {work}",
            file=sys.stderr,
        )
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"soak: no violation in {seconds:.0f} s (seed {args.seed}): "
        f"{report['operations_total']} operations, {sum(driver.faults.values())} faults, "
        f"{report['server_instances']} server instances"
    )
    return 0
