"""The soak driver: one thread, one loop, many forked clients, one recorded server.

The loop forks clients from a seeded random mix (mix.py), kills some of them mid-write or
mid-read (pool.py), restarts the server under them, floods it, and watches its process from
/proc (watch.py). Gates (gates.py) keep the races docs/PROTOCOL.md names out of the mix.
At quiet points every client has gone and the server must be back to its baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from . import clients
from .context import GATE_TIMEOUT, Context
from .gates import Gates
from .mix import Mix
from .oracle import Oracle
from .pool import Pool
from .records import Instance
from .shortage import RENEWAL_ROLE, FdShortage
from .watch import Resources, ServerProcess

STOP_PROMISE = 1.0  # docs/PROTOCOL.md guarantee 9
DRAIN_LIMIT = 120.0  # for in_pipe to empty at a quiet point


class Driver:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        rng = random.Random(args.seed)
        oracle = Oracle(args.max_message_size)
        began = time.monotonic()
        # The anchor leads the process group every child joins, so one killpg ends them all.
        self.anchor = subprocess.Popen(
            ["sleep", str(int(args.duration) + 900)],
            preexec_fn=_lead_group,  # noqa: PLW1509 (one thread)
        )
        self.pgid = self.anchor.pid
        self.server = ServerProcess(work, args, self.pgid)
        self.ctx = ctx = Context(args, work, self.server, rng, oracle, began)
        self.args = args
        self.work = work
        self.oracle = oracle
        self.began = began
        self.res = Resources()
        self.gates = Gates(ctx)
        self.pool = Pool(ctx, self.gates, self.pgid)
        self.next_restart = began + rng.uniform(8, 20)
        self.mix = Mix(ctx, self.pool, self.gates, began + rng.uniform(3, 10))
        self.next_quiet = began + rng.uniform(12, 20)
        self.shortage = FdShortage(ctx, began + rng.uniform(3, 10))
        self.last_sample = 0.0
        self.marks = 0
        self.last_state: dict[str, Any] = {}
        self.server_path = "?"

    # -- the server -------------------------------------------------------------------------

    def start_server(self) -> None:
        created = time.monotonic()
        answer = self.server.ask("start")
        self.server_path = answer["server"]
        inst = Instance(answer["inst"], answer["in_ino"], created)
        self.ctx.inst = inst
        self.oracle.instances[inst.inst] = inst
        self.gates.reader_gate_since = None

    def stop_server(self, graceful: bool) -> None:
        inst = self.ctx.inst
        assert inst is not None
        inst.stopped = time.monotonic()
        inst.graceful = graceful
        answer = self.server.ask("stop")
        inst.gone = time.monotonic()
        inst.stop_seconds = answer["seconds"]
        inst.stats = answer["stats"]
        how = "graceful" if graceful else "under load"
        if self.ctx.short_of_fds:
            how += ", out of descriptors"
        if answer["seconds"] > STOP_PROMISE:
            self.oracle.violation(
                "stop() took longer than a second",
                f"instance {inst.inst}: {answer['seconds']:.3f} s ({how})",
            )
        if answer["threads"]:
            self.oracle.violation(
                "server thread alive after stop() returned",
                f"instance {inst.inst} ({how}): {answer['threads']}",
            )
        fifos = []
        for path in self.work.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISFIFO(path.lstat().st_mode):
                    fifos.append(path.name)
        if fifos:
            self.oracle.violation(
                "FIFO left after stop()", f"instance {inst.inst} ({how}): {sorted(fifos)}"
            )

    def restart(self, graceful: bool) -> None:
        self.stop_server(graceful)
        self.ctx.restarts += 1
        self.ctx.ops["restart (stop, then start on the same paths)"] += 1
        if not graceful:
            self.ctx.faults["server restart under load"] += 1
        if self.shortage.active:
            self.ctx.faults["stop() during an fd shortage"] += 1
            self.shortage.end()  # a new server needs descriptors to start
        self.pump_for(self.ctx.rng.uniform(0, 0.3))
        self.start_server()

    # -- the loop ---------------------------------------------------------------------------

    def sample(self) -> None:
        now = time.monotonic()
        if now - self.last_sample < 0.1:
            return
        self.last_sample = now
        self.server.sample(self.res)

    def pump(self) -> None:
        self.pool.reap()
        self.sample()
        if self.server.process.poll() is not None:
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
        self.res.base_fds = self.server.fd_count()
        self.res.base_threads = len(self.server.threads())
        self.res.base_rss = self.server.rss()
        self.res.base_live = self.server.ask("memory")["live"]
        end = self.began + self.args.duration
        rng = self.ctx.rng
        while True:
            now = time.monotonic()
            self.pump()
            if now >= end:
                break
            if self.steer_shortage(now):
                continue
            if now >= self.next_quiet:
                self.quiet(graceful_restart=rng.random() < 0.4)
                self.next_quiet = time.monotonic() + rng.uniform(12, 25)
                continue
            if now >= self.next_restart:
                self.restart(graceful=False)
                self.next_restart = time.monotonic() + rng.uniform(10, 25)
            self.mix.schedule(now)
            time.sleep(0.003)
        if self.shortage.active:
            self.shortage.end()
        self.quiet(graceful_restart=False, final=True)

    def steer_shortage(self, now: float) -> bool:
        """Begin and end fd shortages; True while one lasts and it holds the loop's other
        timers (a quiet point, a plain restart) back."""
        shortage = self.shortage
        if not shortage.active:
            lone_writer = self.gates.writer_mode != "shared"
            if now >= shortage.next_at and not lone_writer and not self.pool.alive(RENEWAL_ROLE):
                shortage.begin(now)
                assert shortage.until is not None
                # Clients that make the server need descriptors: a reader that leaves at
                # once (the next session needs a write end), and writers that come and go
                # (each time the last one leaves, in_pipe is reopened).
                if self.gates.reader_gate():
                    want = self.ctx.rng.randint(1, 5000)
                    self.pool.spawn(
                        "reader", {"reader"}, 10, None, seconds=0.05, want=want, pause=0
                    )
                self.pool.spawn("in_loop", {"loop"}, 5, None, seconds=shortage.until - now)
            return False
        assert shortage.until is not None
        if shortage.stop_at is not None and now >= shortage.stop_at:
            self.restart(graceful=False)
        elif now >= shortage.until:
            shortage.end()
            return False
        self.mix.schedule(now)
        time.sleep(0.003)
        return True

    # -- quiet points -----------------------------------------------------------------------

    def settle(self) -> None:
        """Let every client finish and both gates open, with nothing new started but the
        readers that take the handler's echoes while it catches up with the last writer."""
        gates = self.gates
        self.wait_for(lambda: not self.pool.children, 60)
        if gates.writer_mode == "gate":
            began = time.monotonic()
            self.wait_for(lambda: self.writer_gate_with_room(began), 120)
        if gates.writer_mode == "drain" and gates.pending_exclusive is not None:
            gates.pending_exclusive = None
        gates.writer_mode = "shared"
        gates.gate_writer = None
        self.wait_for(gates.reader_gate, GATE_TIMEOUT + 1)
        self.wait_for(lambda: self.server.ask("state")["floods"] == 0, 30)

    def quiet(self, graceful_restart: bool, final: bool = False) -> None:
        """A quiet point: drain everything, then fds and threads must be back to baseline."""
        ctx = self.ctx
        ctx.trace("quiet point: settling")
        self.settle()
        ctx.trace("settled")
        self.drain_in_pipe()
        proving = self.shortage.unproven
        if proving:
            self.prove_inbound()  # on an empty in_pipe: its messages come next
        settled = time.monotonic()  # every client has ended: nothing is written after this
        state = self.server.ask("state")
        ctx.trace(f"in_pipe drained: {state}")
        inst = ctx.inst
        assert inst is not None
        inst.drained = settled
        taken = max(
            (t[1] for r in self.oracle.readers for t in r.taken if t[0] == inst.inst), default=-1
        )
        if state["outseq"] - 1 > taken or proving:
            # The last message may be anonymous: a framed one after it tells the drain when
            # it has everything. After an fd shortage, that reader shows out_pipe serves.
            # The reader comes first: a full backlog has room for the mark once it reads.
            self.marks += 1
            needle = f":mark-{self.marks}\n"
            drain = self.pool.spawn("drain", {"reader"}, 30, None, needle=needle)
            mark = self.server.ask("mark", number=self.marks)["seq"]
            self.wait_for(lambda: drain.pid not in self.pool.children, 40)
            self.wait_for(self.gates.reader_gate, GATE_TIMEOUT + 1)
            ctx.trace(f"drain reader c{drain.cid} done")
            if not any(t[:2] == (inst.inst, mark) for t in self.oracle.readers[-1].taken):
                self.server.dump_stacks()
                self.oracle.violation(
                    "sent messages not delivered to a reader at a quiet point",
                    f"instance {inst.inst}: a reader did not get o{inst.inst}:{mark} (a mark "
                    f"sent after everything else) within 30 s ({state})",
                )
        self.shortage.unproven = False
        self.check_baseline("at a quiet point, every client gone")
        self.last_state = self.server.ask("state")
        if final:
            self.stop_server(graceful=True)
        elif graceful_restart:
            self.stop_server(graceful=True)
            ctx.restarts += 1
            ctx.ops["restart (stop, then start on the same paths)"] += 1
            self.start_server()
            self.check_baseline("after a restart")

    def writer_gate_with_room(self, began: float) -> bool:
        """The writer gate, while readers take what waits in out_pipe: with the backlog full
        and no reader, the handler would wait send_timeout per message to reach the gate."""
        gates = self.gates
        if gates.writer_gate():
            return True
        slow = time.monotonic() - began > 2 * self.args.send_timeout + 0.3
        if slow and not self.pool.children and gates.reader_gate():
            self.spawn_taker()
        return False

    def spawn_taker(self) -> None:
        """A reader that takes whatever waits in out_pipe for two seconds."""
        self.pool.spawn("reader", {"reader"}, 12, None, seconds=2, want=1 << 40, pause=0)

    def drain_in_pipe(self) -> None:
        """Wait until the handler stops moving (it may wait send_timeout per message).

        Its echoes need backlog room: while it moves, readers take what waits in out_pipe,
        or a flood of small messages would take one send_timeout each.
        """
        last = self.server.ask("state")["position"]
        deadline = time.monotonic() + DRAIN_LIMIT
        while True:
            self.pump_for(2 * self.args.send_timeout + 0.3)
            state = self.server.ask("state")
            if state["position"] == last:
                break
            if time.monotonic() > deadline:
                self.server.dump_stacks()
                self.oracle.violation(
                    "in_pipe not drained at a quiet point",
                    f"the handler still moved after {DRAIN_LIMIT} s with every client gone "
                    f"and readers taking what it sent: {state}",
                )
                break
            last = state["position"]
            if self.gates.reader_gate():
                self.spawn_taker()
        self.wait_for(lambda: not self.pool.children, 20)
        self.wait_for(self.gates.reader_gate, GATE_TIMEOUT + 1)

    def prove_inbound(self) -> None:
        """After an fd shortage, a new writer's messages must be handled (each may wait
        send_timeout for backlog room: the drain that follows reads the echoes)."""
        writer = self.pool.spawn("small_writer", {"writer"}, 20, None, count=5)
        self.ctx.ops["writer and reader after an fd shortage"] += 1
        self.wait_for(lambda: writer.pid not in self.pool.children, 25)
        record = self.oracle.writers.get(writer.cid)
        last = record.last_done if record else -1
        if last < 0 or not self.wait_for(
            lambda: self.server.ask("writer", writer=writer.cid)["seq"] >= last, 10
        ):
            self.oracle.violation(
                "server did not serve again after an fd shortage",
                f"w{writer.cid} wrote {last + 1} messages; after 10 s the server had handled "
                f"up to #{self.server.ask('writer', writer=writer.cid)['seq']}",
            )

    def check_baseline(self, when: str) -> None:
        """The fds and threads of a server with no client: its own, plus at most one write
        end of out_pipe, which the server keeps across readers when it shares the FIFO."""
        res, server = self.res, self.server
        ok = self.wait_for(
            lambda: (
                server.fd_count() == res.base_fds + server.write_ends()
                and server.write_ends() <= 1
                and len(server.threads()) == res.base_threads
            ),
            3,
        )
        res.quiet_checks += 1
        res.quiet_rss.append(server.rss())
        if not ok:
            self.oracle.violation(
                "fds or threads not back to baseline",
                f"{when}: {server.fd_count()} fds (baseline {res.base_fds}, "
                f"{server.write_ends()} write ends of out_pipe), "
                f"{len(server.threads())} threads (baseline {res.base_threads}); "
                f"fds {server.fds()}; threads {server.threads()}",
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.ask("quit")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.pool.wait_all()
        self.server.process.wait(10)
        self.anchor.wait(10)
        for path in (self.server.in_pipe, self.server.out_pipe):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISFIFO(os.lstat(path).st_mode):
                    os.unlink(path)  # left by a server that did not stop cleanly


def _lead_group() -> None:
    """The anchor's start: lead a new process group (Popen's process_group needs 3.11)."""
    os.setpgid(0, 0)
    clients.die_with_parent()
