"""The two gates that keep the races docs/PROTOCOL.md names out of the mix.

What the checker then finds is the server's fault, not the race's:
- a writer that may leave a tail runs alone, and the next writer starts only after the
  server has seen end of file after that writer's last message;
- readers take turns, and the next one opens only after the server has logged the
  departure of the previous one (by then it has requeued what that reader did not take).
"""

from __future__ import annotations

import time
from typing import Any

from .context import GATE_TIMEOUT, Child, Context


class Gates:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.writer_mode = "shared"  # shared -> drain -> exclusive -> gate -> shared
        self.pending_exclusive: dict[str, Any] | None = None
        self.gate_writer: Child | None = None
        self.gate_since = 0.0
        self.gate_position = -1
        self.reader: Child | None = None
        self.reader_gate_since: float | None = None

    # -- what the pool reports ----------------------------------------------------------------

    def reader_started(self, child: Child) -> None:
        self.reader = child

    def reader_ended(self) -> None:
        self.reader = None
        self.reader_gate_since = time.monotonic()

    def exclusive_ended(self, child: Child) -> None:
        self.gate_writer = child
        self.gate_since = time.monotonic()
        self.writer_mode = "gate"

    # -- the gates ----------------------------------------------------------------------------

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
        server, oracle = self.ctx.server, self.ctx.oracle
        state = server.ask("state")
        if state["connections"] == state["departures"]:
            self.reader_gate_since = None
            return True
        if time.monotonic() - self.reader_gate_since > GATE_TIMEOUT:
            server.dump_stacks()
            oracle.violation(
                "server did not see a reader leave",
                f"{GATE_TIMEOUT} s after the last reader process ended, the server has logged "
                f"{state['connections']} reader connections and {state['departures']} "
                f"departures; its fds: {server.fds()}",
            )
            self.reader_gate_since = None
            return True
        return False

    def writer_gate(self) -> bool:
        """The server has seen end of file after the lone writer's last message."""
        ctx = self.ctx
        child = self.gate_writer
        assert child is not None
        record = ctx.oracle.writers[child.cid]
        hello = record.messages.get(0)
        inst = ctx.oracle.instance_of(record.ino, record.opened)
        if hello is None or hello.done is None or inst is None or inst is not ctx.inst:
            return True  # no risky byte written, or that server is gone with its pipe
        expected = max(
            (
                m.seq
                for m in record.messages.values()
                if m.done is not None and m.total <= ctx.args.max_message_size
            ),
            default=0,
        )
        seen = ctx.server.ask("writer", writer=child.cid)
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
            ctx.server.dump_stacks()
            ctx.oracle.violation(
                "no end of file seen after a writer left",
                f"w{child.cid} ({child.kind}) ended and for {GATE_TIMEOUT} s the server handled "
                f"nothing and saw no end of file; it handled up "
                f"to w{child.cid}:{seen['seq']} (needs {expected}) and saw {seen['eofs']} end of "
                f"file events, {seen['eofs_then']} of them before that message: a tail it holds "
                f"would be glued to the next writer's bytes",
            )
            return True
        return False
