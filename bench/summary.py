"""Figures over the repetitions, and each target's ratio."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from .cases import CASE_BY_NAME
from .clients import COMPILED, REFERENCES

METRICS = {
    "pingpong": ["median_us", "p99_us", "cpu_us", "rss_growth_kib"],
    "stream": ["msgs_per_s", "mb_per_s", "cpu_us", "rss_growth_kib"],
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
            if metric in row:  # a client's memory is not measured
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
    reference: str  # an echo measured in the same repetition, or "size" (the message size)
    goal: float | None  # None: a ratio shown for comparison only
    at_most: bool = False
    subject: str = "ours"
    compare: str = ""  # an echo whose ratio is shown beside, without a verdict (1.0.3)


TARGETS = [
    Target(
        "64 B ping-pong RTT, one CPU, ours / python floor",
        *("pingpong", "median_us", "pyfloor", 1.5, True),
        compare="legacy",
    ),
    Target(
        "64 B ping-pong RTT, two CPUs, ours / C floor",
        *("pingpong2", "median_us", "floor", 1.10, True),
        compare="legacy",
    ),
    Target("64 B pipelined msgs/s, ours / 1.0.3", "stream64", "msgs_per_s", "legacy", 10.0),
    Target("4 MiB MB/s, ours / C floor", "stream4m", "mb_per_s", "floor", 0.95, compare="legacy"),
    Target(
        "4 MiB RSS growth / message size",
        *("stream4m", "rss_growth_kib", "size", 2.0, True),
        compare="legacy",
    ),
    Target(
        "16 MiB RSS growth / message size",
        *("stream16m", "rss_growth_kib", "size", 2.0, True),
        compare="legacy",
    ),
]


# The asyncio face against the threaded server it is built on, on every server case.
ASYNC_GOAL = 1.3
METRIC_WORDS = {"median_us": "RTT", "msgs_per_s": "msgs/s", "mb_per_s": "MB/s"}
TARGETS += [
    Target(
        f"{CASE_BY_NAME[case].title} {METRIC_WORDS[metric]}, asyncio / ours",
        case,
        metric,
        "ours",
        ASYNC_GOAL if metric == "median_us" else round(1 / ASYNC_GOAL, 2),
        at_most=metric == "median_us",
        subject="async",
    )
    for case, metric in [
        ("pingpong", "median_us"),
        ("pingpong2", "median_us"),
        ("stream64", "msgs_per_s"),
        ("stream1k", "mb_per_s"),
        ("stream16k", "mb_per_s"),
        ("stream256k", "mb_per_s"),
        ("stream4m", "mb_per_s"),
        ("stream16m", "mb_per_s"),
    ]
]


def client_targets(names: list[str]) -> list[Target]:
    """Each client against the C echo: pipelined, and with 16 MiB messages (linear buffers)."""
    targets = []
    for name in names:
        pipelined = None if name in REFERENCES else 0.5 if name in COMPILED else 0.1
        large = None if name in REFERENCES else 0.5
        if name != "cecho":
            targets += [
                Target(
                    f"{name}, 64 B", "clients64", "msgs_per_s", "cecho", pipelined, subject=name
                ),
                Target(f"{name}, 16 MiB", "clients16m", "mb_per_s", "cecho", large, subject=name),
            ]
    return targets


def headline(
    rows: list[dict[str, Any]], targets: list[Target], judged: bool
) -> list[dict[str, Any]]:
    """Each target's ratio, with a verdict when the run is `judged`. Ratios are taken within
    each repetition, whose echoes ran minutes apart at most, and then their median: the
    machine drifts between fast and slow wake-ups over minutes, and a ratio of two medians
    could divide a slow moment by a fast one."""
    lines = []
    for target in targets:
        ratio = spread(_paired(rows, target, target.subject))
        line: dict[str, Any] = {
            "target": target.name,
            "case": target.case,
            "subject": target.subject,
            "goal": _goal_text(target),
            "ratio": ratio,
        }
        if ratio and judged and target.goal is not None:
            median = ratio["median"]
            line["met"] = median <= target.goal if target.at_most else median >= target.goal
        if target.compare:
            line["compare"] = spread(_paired(rows, target, target.compare))
        lines.append(line)
    return lines


def _goal_text(target: Target) -> str:
    if target.goal is None:
        return ""
    return ("<= " if target.at_most else ">= ") + f"{target.goal:g}"


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
