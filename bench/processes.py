"""The processes measured: servers and clients, started fresh on fresh FIFOs each time."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .aioladder import STEPS as AIO_STEPS  # the least an asyncio server pays
from .cases import BENCH, BUILD, PIPE_SIZE, ROOT, BenchError, Case
from .ladder import STEPS as LADDER_STEPS  # from the Python floor to ours (bench-profile)


@dataclass(frozen=True)
class Echo:
    """What the load client sends messages through: a server, or a client's echo example."""

    name: str
    label: str
    command: Callable[[str, str], list[str]]  # (the pipe it reads, the pipe it writes)
    # A server says "ready", is stopped by SIGTERM and has its memory read; a client ends by
    # itself at end of stream, when the load client closes the pipes.
    kind: str = "server"
    makes_fifos: bool = False  # the Python servers create their FIFOs; the others need them


def servers(legacy_python: str) -> dict[str, Echo]:
    echo, pyfloor = str(BENCH / "echo_server.py"), str(BENCH / "pyfloor.py")
    size = str(PIPE_SIZE)
    found = {
        "floor": Echo("floor", "floor", lambda i, o: [str(BUILD / "floor"), i, o, size]),
        "ours": Echo("ours", "ours", lambda i, o: [sys.executable, echo, i, o], makes_fifos=True),
        "async": Echo(
            "async",
            "asyncio",
            lambda i, o: [sys.executable, echo, "--async", i, o],
            makes_fifos=True,
        ),
        "legacy": Echo(
            "legacy", "1.0.3", lambda i, o: [legacy_python, echo, i, o], makes_fifos=True
        ),
        "pyfloor": Echo(
            "pyfloor", "python floor", lambda i, o: [sys.executable, pyfloor, i, o, size]
        ),
    }
    for step in LADDER_STEPS:
        command = partial(_ladder_command, step, size)
        found[f"ladder-{step}"] = Echo(f"ladder-{step}", f"+{step}", command)
    for step in AIO_STEPS:
        command = partial(_ladder_command, step, size, module="bench.aioladder")
        found[f"aio-{step}"] = Echo(f"aio-{step}", f"asyncio {step}", command)
    return found


def _ladder_command(
    step: str, size: str, to_echo: str, from_echo: str, module: str = "bench.ladder"
) -> list[str]:
    return [sys.executable, "-m", module, step, to_echo, from_echo, size]  # from ROOT


# pyfloor, a byte echo in Python with no framing, is what any Python server can reach at
# best: the one-CPU ping-pong target is judged against it.
DEFAULT_SERVERS = ["floor", "ours", "async", "legacy", "pyfloor"]
SERVER_NAMES = [
    *DEFAULT_SERVERS,
    *(f"ladder-{step}" for step in LADDER_STEPS),
    *(f"aio-{step}" for step in AIO_STEPS),
]
SERVER_ALIASES = {
    "ladder": ["floor", "pyfloor", *(f"ladder-{step}" for step in LADDER_STEPS), "ours"],
    "aioladder": ["pyfloor", *(f"aio-{step}" for step in AIO_STEPS), "ours", "async"],
}


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> int:
    """Start counting peak memory from now; return the baseline in KiB."""
    with contextlib.suppress(OSError):
        # Writing 5 resets VmHWM to the current resident size (Linux >= 4.0).
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmHWM")


def wait_ready(proc: subprocess.Popen[str], timeout: float, log: Path) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("ready"):
        raise BenchError(f"server did not start: {tail(log) or 'no ready line'}")
    return line.split(" ", 1)[1].strip() if " " in line else ""


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.stdout:
        proc.stdout.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


def tail(log: Path, lines: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    """The command kept on one CPU, with every thread it starts (taskset, util-linux)."""
    return argv if cpu is None else ["taskset", "--cpu-list", str(cpu), *argv]


def cpus_for(case: Case) -> tuple[int | None, int | None]:
    """(load client's CPU, the echoes' CPU) for a case."""
    if not case.cpus:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if case.cpus == "two" and len(cpus) < 2:
        raise BenchError("needs two CPUs")
    return cpus[0], cpus[1] if case.cpus == "two" else cpus[0]


def run_json_lines(
    argv: list[str], timeout: float, cpu: int | None, watched: list[Running]
) -> list[dict[str, Any]]:
    """Run the load client; stop it early, and say why, if an echo it drives has ended."""
    proc = subprocess.Popen(
        pinned(cpu, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    out = err = ""
    while time.monotonic() < deadline:
        try:
            out, err = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if any(r.proc.poll() is not None for r in watched):
                # An echo may end as the load client closes its pipes, before the load client
                # itself exits: that is no fault.
                deadline = min(deadline, time.monotonic() + 5)
    if proc.returncode is None:
        proc.kill()
        proc.communicate()
        gone = "; ".join(r.ended() for r in watched if r.proc.poll() is not None)
        raise BenchError(gone or f"the load client timed out after {timeout:.0f} s")
    if proc.returncode != 0:
        raise BenchError(err.strip() or f"the load client exited with {proc.returncode}")
    return [json.loads(line) for line in out.splitlines()]


class Running:
    """A fresh echo process on fresh FIFOs in `folder`, ready for one measurement."""

    def __init__(self, echo: Echo, folder: str, cpu: int | None) -> None:
        self.echo = echo
        self.to_echo, self.from_echo = f"{folder}/to", f"{folder}/from"
        self.log = Path(folder) / "echo.log"
        if not echo.makes_fifos:
            os.mkfifo(self.to_echo, 0o600)
            os.mkfifo(self.from_echo, 0o600)
        server = echo.kind == "server"
        with open(self.log, "w") as log_file:
            self.proc = subprocess.Popen(
                pinned(cpu, echo.command(self.to_echo, self.from_echo)),
                stdout=subprocess.PIPE if server else subprocess.DEVNULL,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
            )
        self.version, self.baseline = "", 0
        if server:
            try:
                self.version = wait_ready(self.proc, 30, self.log)
                self.baseline = reset_peak(self.proc.pid)
            except BaseException:
                stop(self.proc)
                raise

    def ended(self) -> str:
        return f"{self.echo.label} exited with {self.proc.returncode}: {tail(self.log) or '-'}"

    def figures(self) -> dict[str, Any]:
        """A server's peak resident memory since it was ready, less what it had then."""
        if self.echo.kind != "server":
            return {}
        if self.proc.poll() is not None:
            raise BenchError(self.ended())
        growth = status_kib(self.proc.pid, "VmHWM") - self.baseline
        return {"rss_growth_kib": growth, "version": self.version}

    def finish(self) -> None:
        """Stop a server; see a client end by itself, as the load client closed its pipes."""
        if self.echo.kind == "server":
            status = stop(self.proc)
            if status not in (0, -signal.SIGTERM):
                raise BenchError(
                    f"{self.echo.label} exited with {status} when stopped: {tail(self.log)}"
                )
            return
        try:
            status = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            stop(self.proc)
            raise BenchError(f"{self.echo.label} did not end at end of stream") from None
        if status != 0:
            raise BenchError(self.ended())


@contextlib.contextmanager
def started(echo: Echo, cpu: int | None = None) -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="pio-bench-") as folder:
        running = Running(echo, folder, cpu)
        try:
            yield running
        except BaseException:
            stop(running.proc)
            raise
        running.finish()
