"""Build the testees, play every cell of the matrix, show progress while doing it."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

from . import engine
from .engine import Result
from .process import child_env, run_build
from .registry import INTERMITTENT, Testee
from .scenario import Scenario

BUILD_TIMEOUT = 600.0


@dataclass
class Cell:
    testee: Testee
    scenario: Scenario
    expected_failure: str | None
    result: Result | None = None

    @property
    def outcome(self) -> str:
        """pass, fail, xfail (failed as listed), xpass (passed though listed), or not played:
        skipped (a command the testee needs is missing), unsupported (a server option)."""
        assert self.result is not None
        if self.result.verdict:
            return self.result.verdict
        if self.result.passed:
            return "xpass" if self.expected_failure and not self.intermittent else "pass"
        return "xfail" if self.expected_failure else "fail"

    @property
    def intermittent(self) -> bool:
        """Listed as failing only sometimes: a pass is no surprise."""
        return bool(self.expected_failure and self.expected_failure.startswith(INTERMITTENT))

    @property
    def name(self) -> str:
        return f"{self.testee.label} / {self.scenario.id}"


@dataclass
class Build:
    ok: bool
    output: str
    seconds: float


@dataclass
class Run:
    testees: list[Testee]
    scenarios: list[Scenario]
    cells: list[Cell]
    builds: dict[str, Build] = field(default_factory=dict)
    seconds: float = 0.0
    missing: dict[str, list[str]] = field(default_factory=dict)  # label -> commands not found

    def count(self, outcome: str) -> int:
        return sum(1 for cell in self.cells if cell.outcome == outcome)


class Progress:
    """Live progress on stderr: a redrawn status line on a terminal, one line per cell otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()
        self.running: list[str] = []
        self.lock = threading.Lock()

    def note(self, text: str) -> None:
        with self.lock:
            self._clear()
            print(text, file=self.stream, flush=True)
            self._draw()

    def start(self, cell: Cell) -> None:
        with self.lock:
            self.running.append(cell.name)
            self._draw()

    def finish(self, cell: Cell) -> None:
        assert cell.result is not None
        with self.lock:
            self.running.remove(cell.name)
            self.done += 1
            outcome = cell.outcome
            if not self.tty or outcome in ("fail", "xpass"):
                self._clear()
                width = len(str(self.total))
                print(
                    f"[{self.done:{width}}/{self.total}] {outcome:5} {cell.testee.label:12} "
                    f"{cell.scenario.id:34} {cell.result.seconds:6.2f} s"
                    + (f"  {cell.result.message}" if outcome == "fail" else ""),
                    file=self.stream,
                    flush=True,
                )
            self._draw()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")

    def _draw(self) -> None:
        if self.tty:
            now = ", ".join(self.running) or "-"
            line = f"[{self.done}/{self.total}] running: {now}"
            self.stream.write("\r\033[K" + line[:200])
            self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self._clear()
            self.stream.flush()


def find_missing(testees: list[Testee]) -> dict[str, list[str]]:
    """Testees whose `needs` are not all found, on the PATH their commands will have."""
    path = child_env()["PATH"]
    return {t.label: m for t in testees if (m := t.missing(path))}


def skipped_result(testee: Testee, missing: list[str]) -> Result:
    how = f"; install with: {testee.install}" if testee.install else ""
    return Result(False, 0.0, f"skipped: needs {', '.join(missing)}{how}", verdict="skipped")


def build_all(
    testees: list[Testee], progress: Progress, missing: dict[str, list[str]]
) -> dict[str, Build]:
    builds: dict[str, Build] = {}
    for testee in testees:
        if not testee.build or testee.label in missing:
            continue
        progress.note(f"building {testee.label}: {testee.build}")
        ok, output, seconds = run_build(testee.build, BUILD_TIMEOUT)
        builds[testee.label] = Build(ok, output, seconds)
        if not ok:
            progress.note(output)
    return builds


def run_matrix(
    testees: list[Testee],
    scenarios: list[Scenario],
    expected: Callable[[Testee], dict[str, str]],
    *,
    jobs: int = 1,
    scale: float = 1.0,
    stream: TextIO = sys.stderr,
) -> Run:
    started = time.monotonic()
    cells = [
        Cell(testee, scenario, expected(testee).get(scenario.id))
        for testee in testees
        for scenario in scenarios
        if scenario.applies_to(testee.kind)
    ]
    progress = Progress(len(cells), stream)
    missing = find_missing(testees)
    for label, commands in missing.items():
        progress.note(f"skipping {label}: {', '.join(commands)} not found")
    builds = build_all(testees, progress, missing)

    def play(cell: Cell) -> None:
        label = cell.testee.label
        build = builds.get(label)
        progress.start(cell)
        if label in missing:
            cell.result = skipped_result(cell.testee, missing[label])
        elif build is not None and not build.ok:
            cell.result = Result(False, 0.0, "the build failed", build.output.splitlines())
        else:
            cell.result = engine.unsupported(cell.scenario, cell.testee) or engine.run(
                cell.scenario, cell.testee, scale
            )
        progress.finish(cell)

    # Long scenarios first, so that the last cells in flight are short ones.
    ordered = sorted(cells, key=lambda cell: -cell.scenario.timeout)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(play, cell) for cell in ordered]:
            future.result()
    progress.close()
    return Run(testees, scenarios, cells, builds, time.monotonic() - started, missing)


def in_ci() -> bool:
    """Under CI=true every testee must be played: a skipped one fails the run."""
    return os.environ.get("CI") == "true"
