"""The throughput chart: MB/s by message size, one line per server."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .cases import CASES, shown


def chart(
    summary: dict[str, dict[str, dict[str, Any]]],
    subjects: list[tuple[str, str]],
    path: Path,
    note: str,
) -> str:
    try:
        # Optional (the bench extra), and untyped: imported by name, as Any.
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "no chart: matplotlib is missing (pip install -e '.[bench]')"
    sweep = [c for c in CASES if c.mode == "stream" and c.echoes == "servers" and c.name in summary]
    if not sweep:
        return "no chart: no stream case of the servers was run"
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
    return f"chart: {shown(path)}"
