"""One measurement: fresh echoes, one run of the C load client against them."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from .cases import BUILD, CLIENT_WINDOW, PIPE_SIZE, WINDOW, BenchError, Case
from .processes import Echo, cpus_for, run_json_lines, started, tail
from .profiling import profiled


def measure(group: list[Echo], case: Case, config: argparse.Namespace) -> list[dict[str, Any]]:
    """Fresh echo processes, one run of the load client against them all."""
    client_cpu, echo_cpu = cpus_for(case)
    with contextlib.ExitStack() as stack:
        running = [stack.enter_context(started(echo, echo_cpu)) for echo in group]
        argv = [str(BUILD / "loadclient"), case.mode]
        for echo in running:
            argv += [echo.to_echo, echo.from_echo]
        argv += ["--size", str(case.size)]
        if case.echoes == "clients":
            argv += ["--pipe-size", str(PIPE_SIZE)]  # what our server would give them
        if case.mode == "pingpong":
            argv += ["--count", str(config.count), "--warmup", str(config.count // 20)]
            timeout = 120.0 + config.count * len(running) / 1000
        else:
            window = WINDOW if case.echoes == "servers" else CLIENT_WINDOW
            argv += ["--seconds", str(config.seconds), "--window", str(window)]
            timeout = config.seconds + 90
        ours = [echo.proc.pid for echo in running if echo.echo.name == "ours"]
        folded = config.profile / f"{case.name}.folded" if config.profile and ours else None
        with profiled(ours[0] if ours else 0, folded):
            try:
                results = run_json_lines(
                    [*argv, "--timeout", str(int(timeout))], timeout + 10, client_cpu, running
                )
            except BenchError as error:
                logs = "; ".join(f"{r.echo.label}: {tail(r.log) or '-'}" for r in running)
                raise BenchError(f"{error} (output: {logs})") from None
        for echo, result in zip(running, results):
            result.update(echo.figures())
    return results
