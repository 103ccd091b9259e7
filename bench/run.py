"""Benchmarks: this project's server, pipe-io-server 1.0.3 and the raw-pipe floor, side by side.

`make bench` runs everything; `make bench CASES=pingpong SERVERS=ours,floor REPS=1` runs a
part of it. Every measurement starts a fresh server process: the C load client
(bench/loadclient.c) drives it, and its peak resident memory (VmHWM in /proc) is read
before it is stopped. Figures are medians over the repetitions, with min and max.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import select
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import tomllib  # the runner is a tool of the project's venv (Python 3.11)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = ROOT / "build" / "bench"
RESULTS = BENCH / "results"
MIB = 1024 * 1024
WINDOW = 8 * MIB  # bytes a stream keeps unanswered (at least two messages)
FLOOR_PIPE_SIZE = MIB  # the capacity our server gives its FIFOs (fifo.PIPE_SIZE)
CLIENT_ORDER = ["bash", "c", "java", "js", "python", "cat"]
# Not a client: a byte echo that parses nothing, to show how fast the driver itself can go.
CAT = "bash -c 'exec cat < {recv} > {send}'"


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    mode: str  # "pingpong", "stream" or "clients"
    size: int = 64
    # Ping-pong pins the client to one CPU and each server to the same one ("one") or to
    # another ("two"). Left to the scheduler, a round trip lands on one of the two, by
    # chance and for minutes: on a virtual machine a wake-up across CPUs costs ~30 µs.
    cpus: str = ""


CASES = [
    Case("pingpong", "ping-pong 64 B, one CPU", "pingpong", cpus="one"),
    Case("pingpong2", "ping-pong 64 B, two CPUs", "pingpong", cpus="two"),
    Case("stream64", "stream 64 B", "stream", 64),
    Case("stream1k", "stream 1 KiB", "stream", 1024),
    Case("stream16k", "stream 16 KiB", "stream", 16 * 1024),
    Case("stream256k", "stream 256 KiB", "stream", 256 * 1024),
    Case("stream4m", "stream 4 MiB", "stream", 4 * MIB),
    Case("stream16m", "stream 16 MiB", "stream", 16 * MIB),
    Case("clients", "clients through ours", "clients"),
]
CASE_BY_NAME = {case.name: case for case in CASES}
ALIASES = {
    "all": [case.name for case in CASES],
    "latency": ["pingpong", "pingpong2"],
    "pipelined": ["stream64"],
    "large": ["stream4m", "stream16m"],
    "sweep": [case.name for case in CASES if case.mode == "stream"],
}
SMOKE_CASES = ["pingpong", "pingpong2", "stream64", "stream4m", "clients"]


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


class BenchError(Exception):
    pass


# ----------------------------------------------------------------------------- processes


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} for process {pid}")


def _reset_peak(pid: int) -> int:
    """Start counting peak memory from now; return the baseline in KiB."""
    with contextlib.suppress(OSError):
        # Writing 5 resets VmHWM to the current resident size (Linux >= 4.0).
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_kib(pid, "VmHWM")


def _wait_ready(proc: subprocess.Popen[str], timeout: float, log: Path) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("ready"):
        raise BenchError(f"server did not start: {_tail(log) or 'no ready line'}")
    return line.split(" ", 1)[1].strip() if " " in line else ""


def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.stdout:
        proc.stdout.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


def _tail(log: Path, lines: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _pinned(cpu: int | None, argv: list[str]) -> list[str]:
    """The command kept on one CPU, with every thread it starts (taskset, util-linux)."""
    return argv if cpu is None else ["taskset", "--cpu-list", str(cpu), *argv]


def _cpus(case: Case) -> tuple[int | None, int | None]:
    """(client CPU, server CPU) for a case."""
    if not case.cpus:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if case.cpus == "two" and len(cpus) < 2:
        raise BenchError("needs two CPUs")
    return cpus[0], cpus[1] if case.cpus == "two" else cpus[0]


def _run_json_lines(
    argv: list[str], timeout: float, cpu: int | None = None
) -> list[dict[str, Any]]:
    try:
        done = subprocess.run(
            _pinned(cpu, argv), check=False, capture_output=True, text=True, timeout=timeout
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
                _pinned(cpu, server.command(self.in_pipe, self.out_pipe)),
                stdout=subprocess.PIPE,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        try:
            self.version = _wait_ready(self.proc, 30, self.log)
            self.baseline = _reset_peak(self.proc.pid)
        except BaseException:
            _stop(self.proc)
            raise

    def growth_kib(self) -> int:
        """Peak resident memory since it was ready, less what it had then."""
        if self.proc.poll() is not None:
            raise BenchError(f"server exited with {self.proc.returncode}: {_tail(self.log)}")
        return _status_kib(self.proc.pid, "VmHWM") - self.baseline


@contextlib.contextmanager
def _started(server: Server, cpu: int | None = None) -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="pio-bench-") as folder:
        running = Running(server, folder, cpu)
        try:
            yield running
        finally:
            status = _stop(running.proc)
        if status not in (0, -signal.SIGTERM):
            raise BenchError(f"server exited with {status} when stopped: {_tail(running.log)}")


def measure(group: list[Server], case: Case, config: argparse.Namespace) -> list[dict[str, Any]]:
    """Fresh server processes, one run of the load client against them all."""
    client_cpu, server_cpu = _cpus(case)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_started(server, server_cpu)) for server in group]
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
        with _profiled(ours[0] if ours else 0, folded):
            try:
                results = _run_json_lines(
                    [*argv, "--timeout", str(int(timeout))], timeout + 10, client_cpu
                )
            except BenchError as error:
                logs = "; ".join(f"{r.server.label}: {_tail(r.log) or '-'}" for r in servers)
                raise BenchError(f"{error} (server output: {logs})") from None
        for running, result in zip(servers, results):
            result["rss_growth_kib"] = running.growth_kib()
            result["version"] = running.version
    return results


@contextlib.contextmanager
def _profiled(pid: int, folded: Path | None) -> Iterator[None]:
    """Sample the process with py-spy while the body runs, when asked to."""
    if folded is None:
        yield
        return
    py_spy = Path(sys.executable).parent / "py-spy"
    argv = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    spy = subprocess.Popen(
        [*argv, "--output", str(folded)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(0.5)  # attached before the load starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.communicate()
    (folded.with_suffix(".txt")).write_text(profile_summary(folded))


def profile_summary(folded: Path, top: int = 12) -> str:
    """Where the samples fall: per thread, per function with its callees, per line alone."""
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for entry in folded.read_text().splitlines():
        stack, _, count_text = entry.rpartition(" ")
        frames = stack.split(";")
        if frames[-1].startswith("sigwait "):
            continue  # echo_server.py's main thread, waiting for the stop signal
        count = int(count_text)
        runs = [f for f in frames if f.split(" ")[0].endswith("._run")]
        threads[(runs or frames)[0].split(" ")[0]] += count
        # "function (file:line)" -> "function (file)": a function's lines count together.
        for function in {f.rpartition(":")[0] + ")" if ":" in f else f for f in frames}:
            inclusive[function] += count
        lines[frames[-1]] += count
    total = sum(threads.values()) or 1
    out = [f"{folded.name}: {total} samples of busy threads (py-spy, 250 Hz)"]
    for title, counter in (
        ("by thread", threads),
        ("by function, with callees", inclusive),
        ("by line, alone", lines),
    ):
        out.append(f"\n{title}:")
        out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- clients


def _load_clients() -> dict[str, dict[str, str]]:
    with open(ROOT / "conformance" / "clients.toml", "rb") as table:
        clients: dict[str, dict[str, str]] = tomllib.load(table)
    return clients


def prepare_clients() -> tuple[dict[str, str], dict[str, str]]:
    """Build each client once. Returns (runnable: name -> run command, skipped: name -> why)."""
    runnable: dict[str, str] = {}
    skipped: dict[str, str] = {}
    table = _load_clients()
    for name in sorted(table, key=lambda n: [*CLIENT_ORDER, n].index(n)):
        entry = table[name]
        words = shlex.split(entry["run"]) + shlex.split(entry.get("build", ""))
        files = [w for w in words if w.startswith("clients/")]
        missing = [f for f in files if not glob.glob(str(ROOT / f))]
        if missing or not (ROOT / "clients" / name).is_dir():
            skipped[name] = "missing (" + ", ".join(missing or [f"clients/{name}"]) + ")"
            continue
        if "build" in entry:
            done = subprocess.run(
                ["bash", "-c", entry["build"]],
                check=False,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                skipped[name] = "build failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
                continue
        runnable[name] = entry["run"]
    runnable["cat"] = CAT
    return runnable, skipped


def client_rate(run: str, seconds: float) -> dict[str, Any]:
    """Echo rate of one client's echo example, driven by the reference server in-process.

    The rate counts from the first echo to the last, so start-up (a JVM's, say) is left out.
    """
    from pipe_io_server import PipeIOServer  # noqa: PLC0415 (only this case needs it)

    burst, window = 256, 4096
    payload = b"x" * 64
    state = {"received": 0, "target": 0, "bad": 0, "first": 0.0, "last": 0.0}
    reached = threading.Event()

    class Driver(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            now = time.perf_counter()
            if message != payload:
                state["bad"] += 1
            if not state["received"]:
                state["first"] = now
            state["last"] = now
            state["received"] += 1
            if state["received"] >= state["target"]:
                reached.set()

    def wait_for(target: int, deadline: float) -> None:
        state["target"] = target
        reached.clear()
        while state["received"] < target:
            if client.poll() is not None:
                raise BenchError(f"ended after echoing {state['received']} of {sent} messages")
            if time.monotonic() > deadline:
                raise BenchError(f"echoed {state['received']} of {sent} messages, then stalled")
            reached.wait(0.2)

    with tempfile.TemporaryDirectory(prefix="pio-bench-") as tmp:
        in_pipe, out_pipe = f"{tmp}/in", f"{tmp}/out"
        server = Driver(in_pipe, out_pipe)
        server.start()
        argv = shlex.split(run.format(recv=out_pipe, send=in_pipe))
        client = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, text=True,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        sent, failure = 0, ""
        try:
            hard_deadline = time.monotonic() + seconds + 60
            while not state["received"] or state["last"] - state["first"] < seconds:
                for _ in range(burst):
                    server.send_message(payload)
                sent += burst
                wait_for(sent - window + burst, hard_deadline)
            wait_for(sent, hard_deadline)
        except BenchError as error:
            failure = f"{error}; "
        finally:
            server.stop()
            try:
                _, err = client.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                client.kill()
                _, err = client.communicate()
        if failure or client.returncode != 0:
            raise BenchError(f"{failure}exit status {client.returncode}: {err.strip()[-300:]}")
        if state["bad"]:
            raise BenchError(f"{state['bad']} echoes differ from the message sent")
        elapsed = state["last"] - state["first"]
        return {"messages": sent, "msgs_per_s": (sent - 1) / elapsed if elapsed else 0.0}


# ----------------------------------------------------------------------------- summary

METRICS = {
    "pingpong": ["median_us", "p99_us", "rss_growth_kib"],
    "stream": ["msgs_per_s", "mb_per_s", "rss_growth_kib"],
    "clients": ["msgs_per_s"],
}


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """case -> subject (server or client) -> metric -> spread."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if "error" in row:
            continue
        case = CASE_BY_NAME[row["case"]]
        subject = summary.setdefault(case.name, {}).setdefault(row["subject"], {})
        for metric in METRICS[case.mode]:
            subject.setdefault(metric, []).append(row[metric])
    return {
        case: {s: {m: spread(v) for m, v in metrics.items()} for s, metrics in subjects.items()}
        for case, subjects in summary.items()
    }


@dataclass(frozen=True)
class Target:
    name: str
    case: str
    metric: str
    reference: str  # "floor", "legacy", or "size" (divide by the message size)
    goal: float
    at_most: bool


TARGETS = [
    Target(
        "64 B ping-pong RTT, one CPU, ours / floor", "pingpong", "median_us", "floor", 1.10, True
    ),
    Target(
        "64 B ping-pong RTT, two CPUs, ours / floor", "pingpong2", "median_us", "floor", 1.10, True
    ),
    Target("64 B pipelined msgs/s, ours / 1.0.3", "stream64", "msgs_per_s", "legacy", 6.0, False),
    Target("4 MiB MB/s, ours / floor", "stream4m", "mb_per_s", "floor", 0.85, False),
    Target("4 MiB RSS growth / message size", "stream4m", "rss_growth_kib", "size", 3.0, True),
]


def headline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's ratio for ours (and, for comparison, 1.0.3). Ratios are taken within each
    repetition, whose servers ran minutes apart at most, and then their median: the machine
    drifts between fast and slow wake-ups over minutes, and a ratio of two medians could
    divide a slow moment by a fast one."""
    lines = []
    for target in TARGETS:
        line: dict[str, Any] = {
            "target": target.name,
            "goal": ("<= " if target.at_most else ">= ") + f"{target.goal:g}",
        }
        for subject in ("ours", "legacy"):
            ratio = spread(_paired(rows, target, subject)) if subject != target.reference else None
            if ratio:
                median = ratio["median"]
                met = median <= target.goal if target.at_most else median >= target.goal
                line[subject] = {**ratio, "met": met}
        lines.append(line)
    return lines


def _paired(rows: list[dict[str, Any]], target: Target, subject: str) -> list[float]:
    case = CASE_BY_NAME[target.case]
    value = {
        (r["subject"], r["rep"]): r[target.metric]
        for r in rows
        if r["case"] == case.name and "error" not in r
    }
    if target.reference == "size":
        return [v * 1024 / case.size for (s, _), v in value.items() if s == subject]
    return [
        v / value[(target.reference, rep)]
        for (s, rep), v in value.items()
        if s == subject and value.get((target.reference, rep))
    ]


# ----------------------------------------------------------------------------- output


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


FORMATS: dict[str, tuple[str, Callable[[float], str]]] = {
    "median_us": ("RTT median, µs", lambda v: f"{v:.1f}"),
    "p99_us": ("RTT p99, µs", lambda v: f"{v:.1f}"),
    "msgs_per_s": ("messages/s", _si),
    "mb_per_s": ("MB/s", lambda v: f"{v:,.0f}"),
    "rss_growth_kib": ("RSS growth, MiB", lambda v: f"{v / 1024:.1f}"),
}
SHOWN = {
    "pingpong": ["median_us", "p99_us"],
    "pingpong2": ["median_us", "p99_us"],
    "stream64": ["msgs_per_s", "mb_per_s", "rss_growth_kib"],
    "stream4m": ["mb_per_s", "rss_growth_kib"],
    "stream16m": ["mb_per_s", "rss_growth_kib"],
}


def _cell(spread_: dict[str, float] | None, fmt: Callable[[float], str]) -> str:
    if not spread_:
        return "-"
    if spread_["n"] == 1:
        return fmt(spread_["median"])
    return f"{fmt(spread_['median'])} [{fmt(spread_['min'])}-{fmt(spread_['max'])}]"


def table(
    summary: dict[str, dict[str, dict[str, Any]]],
    subjects: list[tuple[str, str]],
    clients: dict[str, Any],
) -> list[list[str]]:
    rows = [["case", "metric", *[label for _, label in subjects]]]
    for case in CASES:
        if case.mode == "clients" or case.name not in summary:
            continue
        for i, metric in enumerate(SHOWN.get(case.name, ["mb_per_s"])):
            title, fmt = FORMATS[metric]
            cells = [_cell(summary[case.name].get(s, {}).get(metric), fmt) for s, _ in subjects]
            rows.append([case.title if i == 0 else "", title, *cells])
    if "clients" in summary or clients.get("skipped"):
        # The clients talk to our server, so their figures go in its column.
        names = [name for name, _ in subjects]
        column = names.index("ours") if "ours" in names else 0
        rows.append(["clients: echo example", "64 B messages/s", *[""] * len(subjects)])
        for name in CLIENT_ORDER:
            if name in summary.get("clients", {}):
                cell = _cell(summary["clients"][name]["msgs_per_s"], _si)
            elif name in clients.get("failed", {}):
                cell = "failed"
            elif name in clients.get("skipped", {}):
                cell = "missing" if "missing" in clients["skipped"][name] else "not built"
            else:
                continue
            cells = [""] * len(subjects)
            cells[column] = cell
            title = "cat (driver's limit)" if name == "cat" else name
            rows.append(["", f"  {title}", *cells])
    return rows


def _ratio_text(value: dict[str, Any] | None) -> str:
    if not value:
        return "-"
    text = f"{value['median']:.2f}"
    if value["n"] > 1:
        text += f" [{value['min']:.2f}-{value['max']:.2f}]"
    return text + ("" if "met" not in value else "  met" if value["met"] else "  MISSED")


def headline_rows(lines: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["target", "goal", "ours", "1.0.3 (for comparison)"]]
    for line in lines:
        legacy = line.get("legacy")
        legacy = {k: v for k, v in legacy.items() if k != "met"} if legacy else None
        rows.append(
            [line["target"], line["goal"], _ratio_text(line.get("ours")), _ratio_text(legacy)]
        )
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(c or " " for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def chart(
    summary: dict[str, dict[str, dict[str, Any]]],
    subjects: list[tuple[str, str]],
    path: Path,
    note: str,
) -> str:
    try:
        import matplotlib  # noqa: PLC0415 (optional: the bench extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "no chart: matplotlib is missing (pip install -e '.[bench]')"
    sweep = [c for c in CASES if c.mode == "stream" and c.name in summary]
    if not sweep:
        return "no chart: no stream case was run"
    fig, ax = plt.subplots(figsize=(8, 5))
    for subject, label in subjects:
        points = [
            (c.size, summary[c.name][subject]["mb_per_s"])
            for c in sweep
            if subject in summary[c.name]
        ]
        if not points:
            continue
        sizes = [size for size, _ in points]
        medians = [s["median"] for _, s in points]
        errors = [
            [s["median"] - s["min"] for _, s in points],
            [s["max"] - s["median"] for _, s in points],
        ]
        ax.errorbar(sizes, medians, yerr=errors, marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([c.size for c in sweep], [c.title.replace("stream ", "") for c in sweep])
    ax.set_xlabel("message size")
    ax.set_ylabel("echo throughput, MB/s of payload (median, min-max)")
    ax.set_title("Echo throughput by message size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.text(0.01, 0.01, note, fontsize=7, alpha=0.7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return f"chart: {path.relative_to(ROOT)}"


# ----------------------------------------------------------------------------- main


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def _revision() -> str:
    """The commit measured, and whether server/ had changes not yet committed."""

    def git(*args: str) -> str:
        argv = ["git", *args]
        done = subprocess.run(argv, check=False, cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with server/ changed" if git("status", "--porcelain", "server") else "")


def _names(text: str, known: list[str], aliases: dict[str, list[str]]) -> list[str]:
    names: list[str] = []
    for word in filter(None, (w.strip() for w in text.split(","))):
        for name in aliases.get(word, [word]):
            if name not in known:
                raise SystemExit(
                    f"unknown name {word!r}; choose from {', '.join(known + list(aliases))}"
                )
            if name not in names:
                names.append(name)
    return names


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--cases", default="all", help="comma-separated: " + ", ".join([*CASE_BY_NAME, *ALIASES]))
    add(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="comma-separated: " + ", ".join(SERVER_NAMES),
    )
    add("--reps", type=int, default=3, help="repetitions (default 3)")
    add("--seconds", type=float, default=2.0, help="length of each stream (default 2)")
    add("--count", type=int, default=20000, help="ping-pong round trips (default 20000)")
    add("--legacy-python", default=str(ROOT / ".venv-legacy" / "bin" / "python"))
    add("--smoke", action="store_true", help="a run of seconds: ours and the floor, one repetition")
    add("--profile", type=Path, help="folder: sample our server with py-spy in each case")
    add("--output", type=Path, help="folder for latest.json, latest.md and throughput.png")
    args = parser.parse_args()
    if args.smoke:
        args.cases, args.servers = ",".join(SMOKE_CASES), "floor,ours"
        args.reps, args.seconds, args.count = 1, 0.3, 300
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def run_all(
    config: argparse.Namespace, cases: list[Case], chosen: list[Server]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every case against every server, repetition after repetition, so that a noisy
    moment of the machine spreads over all of them rather than falling on one. Ping-pong
    runs every server at once, taking turns round trip by round trip."""
    rows: list[dict[str, Any]] = []
    clients: dict[str, Any] = {}
    runnable: dict[str, str] = {}
    if any(case.mode == "clients" for case in cases):
        runnable, clients["skipped"] = prepare_clients()
    for rep in range(1, config.reps + 1):
        for case in cases:
            if case.mode == "clients":
                for name, run in runnable.items():
                    rows += _attempt(
                        rep, case, [name], lambda run=run: [client_rate(run, config.seconds)]
                    )
                continue
            groups = [chosen] if case.mode == "pingpong" else [[server] for server in chosen]
            for group in groups:
                rows += _attempt(
                    rep,
                    case,
                    [server.name for server in group],
                    lambda g=group, c=case: measure(g, c, config),
                )
    clients["failed"] = {
        r["subject"]: r["error"] for r in rows if r["case"] == "clients" and "error" in r
    }
    return rows, clients


def _attempt(
    rep: int, case: Case, subjects: list[str], work: Callable[[], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    rows = [{"case": case.name, "subject": subject, "rep": rep} for subject in subjects]
    print(f"  rep {rep} {case.name} {', '.join(subjects)} ...", end=" ", flush=True)
    try:
        results = work()
    except (BenchError, OSError, subprocess.SubprocessError) as error:
        print("ERROR")
        return [{**row, "error": str(error)} for row in rows]
    print(
        "; ".join(
            (f"{subject}: " if len(subjects) > 1 else "")
            + ", ".join(f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, float))
            for subject, result in zip(subjects, results)
        ),
        flush=True,
    )
    return [{**row, **result} for row, result in zip(rows, results)]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    config = _arguments()
    cases = [CASE_BY_NAME[n] for n in _names(config.cases, list(CASE_BY_NAME), ALIASES)]
    server_names = _names(config.servers, SERVER_NAMES, {})
    if "legacy" in server_names and not Path(config.legacy_python).exists():
        raise SystemExit(f"{config.legacy_python} is missing: `make bench` installs 1.0.3 there")
    if config.profile:
        config.profile.mkdir(parents=True, exist_ok=True)
    whole = not (config.smoke or config.profile) and config.reps >= 3
    whole = whole and len(cases) == len(CASES) and server_names == DEFAULT_SERVERS
    all_servers = servers(config.legacy_python)
    chosen = [all_servers[name] for name in server_names]
    subjects = [(s.name, s.label) for s in chosen]

    machine, revision = _machine(), _revision()
    started = time.monotonic()
    print(
        f"pipe-io-server benchmarks: {config.reps} repetition(s), {config.seconds:g} s streams, "
        f"{config.count} round trips; load average {machine['loadavg_start'][0]:.2f}",
        flush=True,
    )
    rows, clients = run_all(config, cases, chosen)
    machine["loadavg_end"] = os.getloadavg()
    summary = summarise(rows)
    lines = headline(rows)
    note = (
        f"{machine['cpus']} CPUs ({machine['cpu']}), Linux {machine['kernel']}, "
        f"{config.reps} repetitions, load average {machine['loadavg_start'][0]:.2f} at start"
    )
    main_rows, ratio_rows = table(summary, subjects, clients), headline_rows(lines)
    print(f"\n{render_text(main_rows)}\n\n{render_text(ratio_rows)}")
    for name, why in clients.get("skipped", {}).items():
        print(f"client {name}: {why}")
    errors = [row for row in rows if "error" in row]
    for row in errors:
        print(f"ERROR rep {row['rep']} {row['case']} {row['subject']}: {row['error']}")
    # Only a whole run without errors replaces the committed results; others go under build/.
    kind = "smoke" if config.smoke else "failed" if errors else "partial"
    output = config.output or (RESULTS if whole and not errors else BUILD / kind)
    output.mkdir(parents=True, exist_ok=True)

    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "revision": revision,
        "config": {
            "cases": [c.name for c in cases],
            "servers": server_names,
            "reps": config.reps,
            "seconds": config.seconds,
            "pingpong_count": config.count,
            "window_bytes": WINDOW,
            "wall_seconds": round(time.monotonic() - started, 1),
        },
        "versions": {r["subject"]: r["version"] for r in rows if r.get("version")},
        "headline": lines,
        "summary": summary,
        "clients": clients,
        "runs": rows,
    }
    (output / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    (output / "latest.md").write_text(
        f"Measured {report['when']} at {revision}, on {note}.\n\n{render_markdown(main_rows)}\n\n"
        f"{render_markdown(ratio_rows)}\n"
    )
    print(f"\nresults: {_shown(output / 'latest.json')}, {_shown(output / 'latest.md')}")
    if not config.smoke:
        print(chart(summary, subjects, output / "throughput.png", note))
    if config.profile:
        print(f"profiles of our server: {_shown(config.profile)}/*.txt (figures above are slowed)")
    print(
        f"took {time.monotonic() - started:.0f} s; load average now {machine['loadavg_end'][0]:.2f}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
