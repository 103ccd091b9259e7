"""One measurement: fresh echoes, one run of the C load client against them."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from .cases import BUILD, CLIENT_WINDOW, PIPE_SIZE, WINDOW, BenchError, Case
from .processes import Echo, cpus_for, run_json_lines, started, tail
from .profiling import Profile, thread_cpu_ns


def measure(group: list[Echo], case: Case, config: argparse.Namespace) -> list[dict[str, Any]]:
    """Fresh echo processes, one run of the load client against them all. When profiling, a
    second run samples our server: sampling slows it, so the first run gives the figures."""
    results = _run(group, case, config)
    ours = [i for i, echo in enumerate(group) if echo.name == "ours"]
    if config.profile and ours:
        profile = Profile(config.profile / f"{case.name}.folded")
        _run(group, case, config, profile)
        profile.write(case.title, results[ours[0]]["cpu_us"])
    return results


def _run(
    group: list[Echo], case: Case, config: argparse.Namespace, profile: Profile | None = None
) -> list[dict[str, Any]]:
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
        argv += ["--timeout", str(int(timeout))]
        sampling: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if profile:
            pid = next(r.proc.pid for r in running if r.echo.name == "ours")
            sampling = profile.sampling(pid)
            argv = ["chrt", "--idle", "0", *argv]  # see profiling.py
        servers = [r.echo.kind == "server" for r in running]
        before = [
            sum(thread_cpu_ns(r.proc.pid).values()) if s else 0 for r, s in zip(running, servers)
        ]
        with sampling:
            try:
                results = run_json_lines(argv, timeout + 10, client_cpu, running)
            except BenchError as error:
                logs = "; ".join(f"{r.echo.label}: {tail(r.log) or '-'}" for r in running)
                raise BenchError(f"{error} (output: {logs})") from None
        for echo, result, cpu_ns in zip(running, results, before):
            if echo.echo.kind == "server":  # a client may have ended: its /proc is gone
                messages = result.get("round_trips") or result["messages"]
                used = sum(thread_cpu_ns(echo.proc.pid).values()) - cpu_ns
                result["cpu_us"] = used / 1000 / max(messages, 1)
            result.update(echo.figures())
    return results
