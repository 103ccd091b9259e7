"""The processes measured: the servers, started fresh on fresh FIFOs for each measurement."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .cases import BENCH, BUILD, FLOOR_PIPE_SIZE, BenchError, Case


@dataclass(frozen=True)
class Server:
    name: str
    label: str
    command: Callable[[str, str], list[str]]
    makes_fifos: bool  # the Python servers create their FIFOs; the floor needs them made


def servers(legacy_python: str) -> dict[str, Server]:
    echo, pyfloor = str(BENCH / "echo_server.py"), str(BENCH / "pyfloor.py")
    return {
        "floor": Server(
            "floor", "floor", lambda i, o: [str(BUILD / "floor"), i, o, str(FLOOR_PIPE_SIZE)], False
        ),
        "ours": Server("ours", "ours", lambda i, o: [sys.executable, echo, i, o], True),
        "legacy": Server("legacy", "1.0.3", lambda i, o: [legacy_python, echo, i, o], True),
        "pyfloor": Server(
            "pyfloor",
            "python floor",
            lambda i, o: [sys.executable, pyfloor, i, o, str(FLOOR_PIPE_SIZE)],
            False,
        ),
    }


# pyfloor (a byte echo in Python, no framing) is not in the default set: it shows what any
# Python server can reach at best, to judge the targets against.
SERVER_NAMES = ["floor", "ours", "legacy", "pyfloor"]
DEFAULT_SERVERS = ["floor", "ours", "legacy"]


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
    """(client CPU, server CPU) for a case."""
    if not case.cpus:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if case.cpus == "two" and len(cpus) < 2:
        raise BenchError("needs two CPUs")
    return cpus[0], cpus[1] if case.cpus == "two" else cpus[0]


def run_json_lines(argv: list[str], timeout: float, cpu: int | None = None) -> list[dict[str, Any]]:
    try:
        done = subprocess.run(
            pinned(cpu, argv), check=False, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{Path(argv[0]).name} timed out after {timeout:.0f} s") from error
    if done.returncode != 0:
        raise BenchError(done.stderr.strip() or f"{argv[0]} exited with {done.returncode}")
    return [json.loads(line) for line in done.stdout.splitlines()]


class Running:
    """A fresh server process on fresh FIFOs in `folder`, ready for one measurement."""

    def __init__(self, server: Server, folder: str, cpu: int | None) -> None:
        self.server = server
        self.in_pipe, self.out_pipe = f"{folder}/in", f"{folder}/out"
        self.log = Path(folder) / "server.log"
        if not server.makes_fifos:
            os.mkfifo(self.in_pipe, 0o600)
            os.mkfifo(self.out_pipe, 0o600)
        with open(self.log, "w") as log_file:
            self.proc = subprocess.Popen(
                pinned(cpu, server.command(self.in_pipe, self.out_pipe)),
                stdout=subprocess.PIPE,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        try:
            self.version = wait_ready(self.proc, 30, self.log)
            self.baseline = reset_peak(self.proc.pid)
        except BaseException:
            stop(self.proc)
            raise

    def growth_kib(self) -> int:
        """Peak resident memory since it was ready, less what it had then."""
        if self.proc.poll() is not None:
            raise BenchError(f"server exited with {self.proc.returncode}: {tail(self.log)}")
        return status_kib(self.proc.pid, "VmHWM") - self.baseline


@contextlib.contextmanager
def started(server: Server, cpu: int | None = None) -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="pio-bench-") as folder:
        running = Running(server, folder, cpu)
        try:
            yield running
        finally:
            status = stop(running.proc)
        if status not in (0, -signal.SIGTERM):
            raise BenchError(f"server exited with {status} when stopped: {tail(running.log)}")
