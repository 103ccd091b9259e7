"""Figures over the repetitions, and each target's ratio."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from .cases import CASE_BY_NAME

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
