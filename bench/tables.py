"""The tables printed and written: the servers' figures, the targets, the clients."""

from __future__ import annotations

from typing import Any, Callable

from .cases import CASES


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
    "cpu_us": ("server CPU per message, µs", lambda v: f"{v:.2f}"),
}
SHOWN = {
    "pingpong": ["median_us", "p99_us", "cpu_us"],
    "pingpong2": ["median_us", "p99_us", "cpu_us"],
    "stream64": ["msgs_per_s", "mb_per_s", "cpu_us", "rss_growth_kib"],
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
    summary: dict[str, dict[str, dict[str, Any]]], subjects: list[tuple[str, str]]
) -> list[list[str]]:
    """The servers' figures: a row per case and metric, a column per server."""
    rows = [["case", "metric", *[label for _, label in subjects]]]
    for case in CASES:
        if case.echoes != "servers" or case.name not in summary:
            continue
        for i, metric in enumerate(SHOWN.get(case.name, ["mb_per_s"])):
            title, fmt = FORMATS[metric]
            cells = [_cell(summary[case.name].get(s, {}).get(metric), fmt) for s, _ in subjects]
            rows.append([case.title if i == 0 else "", title, *cells])
    return rows


def _ratio_text(value: dict[str, Any] | None, met: bool | None = None) -> str:
    if not value:
        return "-"
    text = f"{value['median']:.2f}"
    if value["n"] > 1:
        text += f" [{value['min']:.2f}-{value['max']:.2f}]"
    return text + ("" if met is None else "  met" if met else "  MISSED")


def headline_rows(lines: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["target", "goal", "ratio", "1.0.3 (for comparison)"]]
    for line in lines:
        if not line["ratio"]:
            continue  # its case or its reference was not run
        ours = _ratio_text(line["ratio"], line.get("met"))
        compare = _ratio_text(line["compare"]) if "compare" in line else "-"
        rows.append([line["target"], line["goal"], ours, compare])
    return rows


CLIENT_COLUMNS = [  # (case, metric, title, whether its ratio to the C echo follows)
    ("clients64", "msgs_per_s", "64 B stream, messages/s", True),
    ("clientsrtt", "median_us", "64 B ping-pong, one CPU, RTT µs", False),
    ("clients16m", "mb_per_s", "16 MiB stream, MB/s", True),
]


def client_rows(
    summary: dict[str, dict[str, dict[str, Any]]],
    echoes: list[tuple[str, str]],
    lines: list[dict[str, Any]],
    clients: dict[str, Any],
) -> list[list[str]]:
    """A row per echo driven by the load client: its figures, and its ratios to the C echo."""
    ratios = {(line["subject"], line["case"]): line for line in lines}
    failed: dict[str, list[str]] = clients.get("failed", {})
    columns = [c for c in CLIENT_COLUMNS if c[0] in summary or c[0] in failed]

    def figure(case: str, name: str, metric: str) -> str:
        if name in failed.get(case, []):
            return "failed"
        return _cell(summary.get(case, {}).get(name, {}).get(metric), FORMATS[metric][1])

    def ratio(case: str, name: str) -> str:
        line = ratios.get((name, case))
        if not line or not line["ratio"]:
            return ""
        goal = f" (goal {line['goal']})" if line["goal"] else ""
        return _ratio_text(line["ratio"], line.get("met")) + goal

    header = ["echo"]
    for _, _, title, with_ratio in columns:
        header += [title, "/ C echo"] if with_ratio else [title]
    rows = [header]
    for name, label in echoes:
        row = [label]
        for case, metric, _, with_ratio in columns:
            row.append(figure(case, name, metric))
            if with_ratio:
                row.append(ratio(case, name))
        rows.append(row)
    for name in clients.get("skipped", {}):
        rows.append([name, "skipped", *[""] * (len(header) - 2)])
    return rows


def skipped_notes(clients: dict[str, Any]) -> list[str]:
    return [f"{name} skipped: {why}" for name, why in clients.get("skipped", {}).items()]


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(c or " " for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)
