"""The seeded mix: which client starts when, and the floods the server makes itself."""

from __future__ import annotations

from . import wire
from .context import Context
from .gates import Gates
from .pool import Pool
from .shortage import RENEWAL_ROLE
from .watch import MiB

_ANONYMOUS = {"empty": "empty messages", "tiny": "1-2 byte messages"}


class Mix:
    def __init__(self, ctx: Context, pool: Pool, gates: Gates, next_flood: float) -> None:
        self.ctx = ctx
        self.pool = pool
        self.gates = gates
        self.next_writer = self.next_reader = ctx.began
        self.next_flood = next_flood
        self.next_stall = ctx.began + ctx.rng.uniform(4, 12)
        self.flood_number = 0

    def schedule(self, now: float) -> None:
        self.schedule_writers(now)
        self.schedule_reader(now)
        self.maybe_flood(now)
        self.maybe_stall(now)

    def schedule_writers(self, now: float) -> None:
        ctx, gates, pool = self.ctx, self.gates, self.pool
        rng = ctx.rng
        if gates.writer_mode == "gate":
            if gates.writer_gate():
                gates.writer_mode = "shared"
                gates.gate_writer = None
            return
        if gates.writer_mode == "drain":
            if not pool.alive("writer") and not self.short_on_in_pipe():
                spec = gates.pending_exclusive or {}
                kind = spec.pop("kind")
                kill = spec.pop("kill")
                pool.spawn(kind, {"exclusive"}, 40, kill, **spec)
                gates.writer_mode = "exclusive"
            return
        if gates.writer_mode != "shared" or now < self.next_writer:
            return
        self.next_writer = now + rng.expovariate(1 / 0.12)
        roll = rng.random()
        if roll < 0.10:
            kill = rng.uniform(0, 1) if rng.random() < 0.4 else None
            if rng.random() < 0.75:
                gates.pending_exclusive = {
                    "kind": "big_writer",
                    "kill": kill,
                    "count": rng.randint(1, 8),
                    "tail": rng.random() < 0.3,
                }
            else:
                gates.pending_exclusive = {"kind": "endless_line", "kill": kill}
            gates.writer_mode = "drain"
        elif roll < 0.16:
            pool.spawn("in_loop", {"loop"}, 5, None, seconds=rng.uniform(0.2, 1.5))
        elif roll < 0.19 and not pool.alive("anonymous"):
            # One at a time: the checker knows their messages by their order.
            kind = rng.choice(wire.ANONYMOUS_KINDS)
            count = rng.choice((2_000, 30_000, 150_000))
            pool.spawn(
                "anonymous_writer", {"writer", "anonymous"}, 40, None, anonymous=kind, count=count
            )
            ctx.faults[f"flood of {_ANONYMOUS[kind]} (inbound)"] += 1
        elif len(pool.alive("writer")) < 4:
            kill = rng.uniform(0, 1.0) if rng.random() < 0.2 else None
            pool.spawn("small_writer", {"writer"}, 30, kill, count=rng.choice((5, 50, 300)))

    def short_on_in_pipe(self) -> bool:
        """Descriptors are short, or the server still waits to reopen in_pipe: it then reads
        in_pipe only between retries, up to half a second apart, and logs end of file only
        once the reopen succeeds, so a tail left by a lone writer could meet the next
        writer's bytes (the race of docs/PROTOCOL.md guarantee 5, wider) and the writer gate
        could not tell. Lone writers wait."""
        return self.ctx.short_of_fds or bool(self.ctx.server.ask("state")["in_pipe_short"])

    def schedule_reader(self, now: float) -> None:
        ctx, pool = self.ctx, self.pool
        rng = ctx.rng
        if now < self.next_reader or not self.gates.reader_gate():
            return
        roll = rng.random()
        self.next_reader = now + rng.expovariate(1 / 0.05)
        kill = None
        if roll < 0.06:
            self.next_reader = now + rng.uniform(0.3, 2.5)
            ctx.ops["pause (no reader)"] += 1
            ctx.faults["pause (no reader)"] += 1
            return
        if roll < 0.12:
            if not ctx.short_of_fds:
                pool.spawn(
                    "out_loop", {"reader", RENEWAL_ROLE}, 5, None, seconds=rng.uniform(0.2, 1.5)
                )
            return
        if rng.random() < 0.25:
            kill = rng.uniform(0, 2.0)
        if roll < 0.18:
            if not ctx.short_of_fds:
                self.take_turns(kill)
            return
        if roll < 0.35 and self.gates.writer_mode == "shared" and len(pool.alive("writer")) < 4:
            pool.spawn("session", {"writer", "reader"}, 30, kill, count=rng.choice((3, 30, 200)))
        elif roll < 0.50:
            want = rng.randint(1, 300_000)
            pool.spawn("reader", {"reader"}, 10, kill, seconds=5, want=want, pause=0)
            ctx.ops["partial read, then close"] += 1
        elif roll < 0.60:
            seconds = rng.uniform(1, 4)
            pool.spawn(
                "reader", {"reader"}, seconds + 10, kill, seconds=seconds, want=1 << 40, pause=0.05
            )
            ctx.ops["slow reader"] += 1
        else:
            seconds = rng.uniform(0.2, 3)
            pool.spawn(
                "reader", {"reader"}, seconds + 10, kill, seconds=seconds, want=1 << 40, pause=0
            )

    def take_turns(self, kill: float | None) -> None:
        """Readers taking turns 0-5 ms apart while several writers send."""
        ctx, pool = self.ctx, self.pool
        rng = ctx.rng
        while self.gates.writer_mode == "shared" and len(pool.alive("writer")) < 3:
            pool.spawn("small_writer", {"writer"}, 30, None, count=300)
        turns = rng.randint(5, 40)
        pool.spawn("turns", {"reader", RENEWAL_ROLE}, 0.8 * turns + 10, kill, turns=turns)

    def maybe_stall(self, now: float) -> None:
        """Now and then, a `serve --exec` of its own whose CMD stops reading (stall.py)."""
        ctx = self.ctx
        if now < self.next_stall or self.pool.alive("stall"):
            return
        self.next_stall = now + ctx.rng.uniform(20, 40)
        echoes = ctx.rng.randint(1, 300)
        send_timeout = ctx.rng.choice((0.05, 0.2, 0.5))
        self.pool.spawn("stall", {"stall"}, 90, None, echoes=echoes, send_timeout=send_timeout)

    def maybe_flood(self, now: float) -> None:
        ctx = self.ctx
        if now < self.next_flood:
            return
        rng = ctx.rng
        self.next_flood = now + rng.uniform(5, 15)
        self.flood_number += 1
        if rng.random() < 0.4:
            kind = rng.choice(wire.ANONYMOUS_KINDS)
            count = rng.randint(20_000, 300_000)
            ctx.server.ask("start_flood", number=self.flood_number, count=count, size=0, kind=kind)
            ctx.faults[f"flood of {_ANONYMOUS[kind]} (outbound)"] += 1
        else:
            size = rng.choice((100, 3000, 60_000, 400_000))
            count = min(rng.randint(50, 3000), (48 * MiB) // size)
            ctx.server.ask("start_flood", number=self.flood_number, count=count, size=size)
            ctx.faults["flood"] += 1
        ctx.ops["flood (a producer faster than its reader)"] += 1
