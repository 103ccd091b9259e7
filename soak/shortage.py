"""Out of descriptors for a moment: the recorder's RLIMIT_NOFILE is lowered to the number of
fds it has open, for 0.2-2 s, while clients come and go, then put back.

The server must wait the shortage out (docs/PROTOCOL.md: logged once, retried with a
backoff), lose and repeat nothing, serve again afterwards, and stop cleanly in the middle
of it. While short of descriptors it cannot renew out_pipe, so readers share the FIFO as
with an unmanaged one: the clients that count on a renewed out_pipe (readers taking turns
without waiting for the server, open/close loops) neither start nor run during a window.
"""

from __future__ import annotations

import resource
import time

from .context import Context

RENEWAL_ROLE = "renewal"  # a client that needs a renewed out_pipe for every reader


class FdShortage:
    def __init__(self, ctx: Context, first: float) -> None:
        self.ctx = ctx
        self.next_at = first
        self.until: float | None = None
        self.stop_at: float | None = None  # a stop() in the middle of this window
        self.soft = 0
        self.unproven = False  # a window ended; the server has not yet shown it serves again

    @property
    def active(self) -> bool:
        return self.until is not None

    def begin(self, now: float) -> None:
        ctx = self.ctx
        rng = ctx.rng
        self.soft, hard = resource.prlimit(ctx.server.pid, resource.RLIMIT_NOFILE)
        open_now = ctx.server.fd_count()
        resource.prlimit(ctx.server.pid, resource.RLIMIT_NOFILE, (open_now, hard))
        self.until = now + rng.uniform(0.2, 2.0)
        self.stop_at = rng.uniform(now, self.until) if rng.random() < 0.3 else None
        ctx.short_of_fds = True
        ctx.faults["fd exhaustion (RLIMIT_NOFILE at the open count)"] += 1
        ctx.trace(f"fd shortage: limit {open_now} until {self.until - ctx.began:.3f}")

    def end(self) -> None:
        ctx = self.ctx
        _, hard = resource.prlimit(ctx.server.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(ctx.server.pid, resource.RLIMIT_NOFILE, (self.soft, hard))
        self.until = self.stop_at = None
        self.next_at = time.monotonic() + ctx.rng.uniform(5, 15)
        ctx.short_of_fds = False
        self.unproven = True
        ctx.trace("fd shortage over")
