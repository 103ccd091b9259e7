"""Build the testees, play every cell of the matrix, show progress while doing it."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

from . import engine
from .engine import Result
from .process import run_build
from .registry import Testee
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
        """pass, fail, xfail (failed as listed) or xpass (passed though listed)."""
        assert self.result is not None
        if self.result.passed:
            return "xpass" if self.expected_failure else "pass"
        return "xfail" if self.expected_failure else "fail"

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


def build_all(testees: list[Testee], progress: Progress) -> dict[str, Build]:
    builds: dict[str, Build] = {}
    for testee in testees:
        if not testee.build:
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
    builds = build_all(testees, progress)

    def play(cell: Cell) -> None:
        build = builds.get(cell.testee.label)
        progress.start(cell)
        if build is not None and not build.ok:
            cell.result = Result(False, 0.0, "the build failed", build.output.splitlines())
        else:
            cell.result = engine.run(cell.scenario, cell.testee, scale)
        progress.finish(cell)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(play, cell) for cell in cells]:
            future.result()
    progress.close()
    return Run(testees, scenarios, cells, builds, time.monotonic() - started)
