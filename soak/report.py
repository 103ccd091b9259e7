"""The summary of a run: figures, the bounds it was held to, and the verdict."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .driver import Driver
from .watch import MiB, live_bound, rss_bound


def check_memory(driver: Driver) -> tuple[int, int]:
    """The peaks against their bounds; returns the bounds (RSS, live heap)."""
    args, res = driver.args, driver.res
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
    return bound, live


def summary(driver: Driver, seconds: float, bound: int, live: int) -> dict[str, Any]:
    res = driver.res
    oracle = driver.oracle
    ctx = driver.ctx
    return {
        "duration_s": round(seconds, 1),
        "server_code": driver.server_path,
        "seed": driver.args.seed,
        "face": driver.args.face,
        "limits": {
            "max_message_size": driver.args.max_message_size,
            "max_backlog": driver.args.max_backlog,
            "send_timeout": driver.args.send_timeout,
        },
        "operations": dict(sorted(ctx.ops.items())),
        "operations_total": sum(v for k, v in ctx.ops.items() if not k.endswith("opens")),
        "faults": dict(sorted(ctx.faults.items())),
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
                "unhandled_at_stop",
            )
        },
        "messages": dict(sorted(oracle.figures.items())),
        "flood": {
            "sent": driver.last_state.get("flood_sent", 0),
            "refused_backlog_full": driver.last_state.get("flood_full", 0),
        },
        "open_close_rate_per_s_max": round(max(driver.pool.loop_rates, default=0)),
        "serve_exec_sigterm_seconds_max": round(max(driver.pool.stall_exit_seconds, default=0), 3),
        "notes": dict(ctx.notes),
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


def verdict(driver: Driver, args: argparse.Namespace, work: Path, seconds: float) -> int:
    """Print the summary and the verdict; the exit status (1 for any violation)."""
    bound, live = check_memory(driver)
    report = summary(driver, seconds, bound, live)
    violations = driver.oracle.violations
    if args.json:
        args.json.write_text(json.dumps({**report, "all_violations": violations}, indent=2))
        print(f"soak: summary in {args.json}")
    else:
        print(json.dumps(report, indent=2))
    if violations:
        first = violations[0]
        print(f"FIRST VIOLATION: {first['kind']}\n{first['detail']}", file=sys.stderr)
        for extra in violations[1:6]:
            print(f"also: {extra['kind']}: {extra['detail'][:300]}", file=sys.stderr)
        print(
            f"soak: {len(violations)} violations (seed {args.seed}); logs kept in {work}",
            file=sys.stderr,
        )
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"soak: no violation in {seconds:.0f} s (seed {args.seed}): "
        f"{report['operations_total']} operations, {sum(driver.ctx.faults.values())} faults, "
        f"{report['server_instances']} server instances"
    )
    return 0
