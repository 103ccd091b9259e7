"""The tables printed and written: figures by case and server, and the targets."""

from __future__ import annotations

from typing import Any, Callable

from .cases import CASES
from .clients import CLIENT_ORDER


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
