"""Benchmarks: this project's server, pipe-io-server 1.0.3 and the raw-pipe floor, side by side.

`make bench` runs everything; `make bench CASES=pingpong SERVERS=ours,floor REPS=1` runs a
part of it. Every measurement starts a fresh server process: the C load client
(bench/loadclient.c) drives it, and its peak resident memory (VmHWM in /proc) is read
before it is stopped. Figures are medians over the repetitions, with min and max.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .cases import (
    ALIASES,
    BUILD,
    CASE_BY_NAME,
    CASES,
    CLIENT_WINDOW,
    RESULTS,
    ROOT,
    SMOKE_CASES,
    WINDOW,
    BenchError,
    Case,
    shown,
)
from .chart import chart
from .clients import prepare_clients
from .measure import measure
from .processes import DEFAULT_SERVERS, SERVER_ALIASES, SERVER_NAMES, Echo, servers
from .summary import TARGETS, client_targets, headline, summarise
from .tables import (
    client_rows,
    headline_rows,
    render_markdown,
    render_text,
    skipped_notes,
    table,
)

WHOLE_REPS = 5  # repetitions a run needs for verdicts, and to replace bench/results


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
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--cases", default="all", help="comma-separated: " + ", ".join([*CASE_BY_NAME, *ALIASES]))
    add(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help="comma-separated: " + ", ".join([*SERVER_NAMES, *SERVER_ALIASES]),
    )
    add("--reps", type=int, default=WHOLE_REPS, help=f"repetitions (default {WHOLE_REPS})")
    add("--seconds", type=float, default=2.0, help="length of each stream (default 2)")
    add("--count", type=int, default=20000, help="ping-pong round trips (default 20000)")
    add("--legacy-python", default=str(ROOT / ".venv-legacy" / "bin" / "python"))
    add(
        "--smoke",
        action="store_true",
        help="seconds long: ours, its asyncio face, the floors, the clients; once",
    )
    add("--profile", type=Path, help="folder: sample our server with py-spy in each case")
    add("--output", type=Path, help="folder for latest.json, latest.md and throughput.png")
    args = parser.parse_args()
    if args.smoke:
        args.cases, args.servers = ",".join(SMOKE_CASES), "floor,ours,async,pyfloor"
        args.reps, args.seconds, args.count = 1, 0.3, 300
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def run_all(
    config: argparse.Namespace, cases: list[Case], chosen: list[Echo], echoes: list[Echo]
) -> list[dict[str, Any]]:
    """Every case against every echo, repetition after repetition, so that a noisy moment
    of the machine spreads over all of them rather than falling on one. Ping-pong runs
    every echo at once, taking turns in blocks of round trips."""
    rows: list[dict[str, Any]] = []
    for rep in range(1, config.reps + 1):
        for case in cases:
            subjects = chosen if case.echoes == "servers" else echoes
            groups = [subjects] if case.mode == "pingpong" else [[echo] for echo in subjects]
            for group in groups:
                names = [echo.name for echo in group]
                rows += _attempt(rep, case, names, partial(measure, group, case, config))
    return rows


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


@dataclass
class Plan:
    """What a run measures, and what it may conclude."""

    config: argparse.Namespace
    cases: list[Case]
    servers: list[Echo]
    echoes: list[Echo]  # the clients' cases: references first, then the clients that run here
    skipped: dict[str, str]  # clients that cannot run here, and why
    judged: bool  # verdicts need medians of several repetitions: not smoke, not profiled
    whole: bool  # every case and the default servers: it may replace bench/results


def _plan() -> Plan:
    config = _arguments()
    cases = [CASE_BY_NAME[n] for n in _names(config.cases, list(CASE_BY_NAME), ALIASES)]
    server_names = _names(config.servers, SERVER_NAMES, SERVER_ALIASES)
    if "legacy" in server_names and not Path(config.legacy_python).exists():
        raise SystemExit(f"{config.legacy_python} is missing: `make bench` installs 1.0.3 there")
    if config.profile:
        config.profile.mkdir(parents=True, exist_ok=True)
    judged = not (config.smoke or config.profile) and config.reps >= WHOLE_REPS
    whole = judged and len(cases) == len(CASES) and server_names == DEFAULT_SERVERS
    every_server = servers(config.legacy_python)
    echoes: list[Echo] = []
    skipped: dict[str, str] = {}
    if any(case.echoes == "clients" for case in cases):
        echoes, skipped = prepare_clients()
    chosen = [every_server[name] for name in server_names]
    return Plan(config, cases, chosen, echoes, skipped, judged, whole)


def _results(plan: Plan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    failed: dict[str, list[str]] = {}
    for row in rows:
        if "error" in row and CASE_BY_NAME[row["case"]].echoes == "clients":
            failed.setdefault(row["case"], []).append(row["subject"])
    echo_names = [echo.name for echo in plan.echoes]
    return {
        "headline": headline(rows, TARGETS, plan.judged),
        "client_targets": headline(rows, client_targets(echo_names), plan.judged),
        "summary": summarise(rows),
        "clients": {"skipped": plan.skipped, "failed": failed},
        "runs": rows,
    }


def _tables(plan: Plan, results: dict[str, Any]) -> list[list[list[str]]]:
    tables = []
    summary = results["summary"]
    if any(case.echoes == "servers" for case in plan.cases):
        subjects = [(s.name, s.label) for s in plan.servers]
        tables += [table(summary, subjects), headline_rows(results["headline"])]
    if plan.echoes or plan.skipped:
        echoes = [(e.name, e.label) for e in plan.echoes]
        tables.append(client_rows(summary, echoes, results["client_targets"], results["clients"]))
    return tables


def main() -> int:
    plan = _plan()
    config = plan.config
    machine, revision = _machine(), _revision()
    started = time.monotonic()
    print(
        f"pipe-io-server benchmarks: {config.reps} repetition(s), {config.seconds:g} s streams, "
        f"{config.count} round trips; load average {machine['loadavg_start'][0]:.2f}",
        flush=True,
    )
    rows = run_all(config, plan.cases, plan.servers, plan.echoes)
    machine["loadavg_end"] = os.getloadavg()
    results = _results(plan, rows)
    tables = _tables(plan, results)
    notes = "".join(f"\n- {note}" for note in skipped_notes(results["clients"]))
    print(
        "\n" + "\n\n".join(render_text(rows_) for rows_ in tables) + (f"\n{notes}" if notes else "")
    )
    if not plan.judged:
        print(f"\nno verdicts: they need {WHOLE_REPS} repetitions, not smoke or profiled")
    errors = [row for row in rows if "error" in row]
    for row in errors:
        print(f"ERROR rep {row['rep']} {row['case']} {row['subject']}: {row['error']}")
    # Only a whole run without errors replaces the committed results; others go under build/.
    kind = "smoke" if config.smoke else "failed" if errors else "partial"
    output = config.output or (RESULTS if plan.whole and not errors else BUILD / kind)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "revision": revision,
        "config": {
            "cases": [c.name for c in plan.cases],
            "servers": [s.name for s in plan.servers],
            "reps": config.reps,
            "seconds": config.seconds,
            "pingpong_count": config.count,
            "window_bytes": WINDOW,
            "client_window_bytes": CLIENT_WINDOW,
            "wall_seconds": round(time.monotonic() - started, 1),
        },
        "versions": {r["subject"]: r["version"] for r in rows if r.get("version")},
        **results,
    }
    note = (
        f"{machine['cpus']} CPUs ({machine['cpu']}), Linux {machine['kernel']}, "
        f"{config.reps} repetitions, load average {machine['loadavg_start'][0]:.2f} at start, "
        f"{machine['loadavg_end'][0]:.2f} at the end"
    )
    (output / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    markdown = "\n\n".join(render_markdown(rows_) for rows_ in tables)
    title = f"Measured {report['when']} at {revision}, on {note}."
    (output / "latest.md").write_text(f"{title}\n\n{markdown}\n{notes}\n")
    print(f"\nresults: {shown(output / 'latest.json')}, {shown(output / 'latest.md')}")
    if not config.smoke:
        subjects = [(s.name, s.label) for s in plan.servers]
        print(chart(results["summary"], subjects, output / "throughput.png", note))
    if config.profile:
        print(f"profiles of our server: {shown(config.profile)}/*.txt")
    print(
        f"took {time.monotonic() - started:.0f} s; load average now {machine['loadavg_end'][0]:.2f}"
    )
    return 1 if errors else 0
