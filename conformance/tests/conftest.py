"""Run the suite as its users do: `python -m conformance ...` in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BROKEN = ROOT / "conformance" / "broken"
CONTROL = f"python3 {HERE.relative_to(ROOT)}/echo_ok.py {{recv}} {{send}}"
PORT = "python3 conformance/broken/port.py {in} {out} --max-message-size {max_message_size}"


@dataclass
class SuiteRun:
    status: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    reports: Path

    def outcome(self, testee: str, scenario: str) -> str:
        for result in self.report["results"]:
            if result["testee"] == testee and result["scenario"] == scenario:
                return str(result["outcome"])
        raise KeyError((testee, scenario))

    def result(self, testee: str, scenario: str) -> dict[str, Any]:
        for result in self.report["results"]:
            if result["testee"] == testee and result["scenario"] == scenario:
                return dict(result)
        raise KeyError((testee, scenario))


@pytest.fixture
def suite(tmp_path: Path) -> Any:
    """Runs `python -m conformance ARGS` from the repository root (or `cwd`)."""

    def run(
        *args: str,
        timeout: float = 150,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        reports_name: str = "reports",
    ) -> SuiteRun:
        reports = tmp_path / reports_name
        done = subprocess.run(
            [sys.executable, "-m", "conformance", "--reports", str(reports), *args],
            cwd=cwd,
            # The suite's own CI setting is not the played run's: a test that wants CI=true
            # says so, the others play as on a developer's machine.
            env={**_without_ci(), "PYTHONPATH": str(ROOT), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        report_file = reports / "report.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else {}
        return SuiteRun(done.returncode, done.stdout, done.stderr, report, reports)

    return run


def _without_ci() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "CI"}
