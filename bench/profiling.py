"""Sampling our server with py-spy while a case runs, and where the samples fall."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def profiled(pid: int, folded: Path | None) -> Iterator[None]:
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
