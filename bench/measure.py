"""One measurement: fresh servers, one run of the C load client against them."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from .cases import BUILD, WINDOW, BenchError, Case
from .processes import Server, cpus_for, run_json_lines, started, tail
from .profiling import profiled


def measure(group: list[Server], case: Case, config: argparse.Namespace) -> list[dict[str, Any]]:
    """Fresh server processes, one run of the load client against them all."""
    client_cpu, server_cpu = cpus_for(case)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(started(server, server_cpu)) for server in group]
        argv = [str(BUILD / "loadclient"), case.mode]
        for running in servers:
            argv += [running.in_pipe, running.out_pipe]
        argv += ["--size", str(case.size)]
        if case.mode == "pingpong":
            argv += ["--count", str(config.count), "--warmup", str(config.count // 20)]
            timeout = 120.0 + config.count * len(servers) / 1000
        else:
            argv += ["--seconds", str(config.seconds), "--window", str(WINDOW)]
            timeout = config.seconds + 90
        ours = [r.proc.pid for r in servers if r.server.name == "ours"]
        folded = config.profile / f"{case.name}.folded" if config.profile and ours else None
        with profiled(ours[0] if ours else 0, folded):
            try:
                results = run_json_lines(
                    [*argv, "--timeout", str(int(timeout))], timeout + 10, client_cpu
                )
            except BenchError as error:
                logs = "; ".join(f"{r.server.label}: {tail(r.log) or '-'}" for r in servers)
                raise BenchError(f"{error} (server output: {logs})") from None
        for running, result in zip(servers, results):
            result["rss_growth_kib"] = running.growth_kib()
            result["version"] = running.version
    return results
