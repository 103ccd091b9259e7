"""`make test`'s stage runner: every stage runs and gets its line; verdict and status match."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "stages.py"

MAKEFILE = """\
ok:
\t@echo first stage works
broken:
\t@echo boom; exit 3
skip-rust:
\t@echo SKIPPED rust: needs cargo
late:
\t@echo ran after the failure
"""


def run(tmp_path: Path, *stages: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "Makefile").write_text(MAKEFILE)
    return subprocess.run(
        [sys.executable, str(RUNNER), "--make", "make", "--log-dir", "logs", *stages],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def table(stdout: str) -> dict[str, list[str]]:
    """The lines after the blank line that ends the stages' own output, by stage name."""
    rows = stdout.rsplit("\n\n", 1)[1].splitlines()
    return {row.split()[0]: row.split() for row in rows[1:-1]}


def test_a_failing_stage_is_reported_and_the_rest_still_run(tmp_path: Path) -> None:
    done = run(tmp_path, "ok", "broken", "skip-rust", "late")
    assert done.returncode == 1
    assert "boom" in done.stdout and "ran after the failure" in done.stdout
    rows = table(done.stdout)
    assert [rows[name][1] for name in ("ok", "broken", "skip-rust", "late")] == [
        "passed",
        "FAILED",
        "skipped",
        "passed",
    ]
    assert rows["broken"][3:] == ["boom"]
    assert rows["skip-rust"][3:] == ["SKIPPED", "rust:", "needs", "cargo"]
    assert rows["ok"][3:] == []
    verdict = done.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("make test: FAILED (broken; logs in logs/): 2 passed, 1 failed,")
    assert (tmp_path / "logs" / "broken.log").read_text().startswith("boom\n")


def test_all_passing_stages_end_with_a_passing_verdict(tmp_path: Path) -> None:
    done = run(tmp_path, "ok", "skip-rust", "late")
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = done.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("make test: PASSED: 2 passed, 1 skipped in ")
    assert set(table(done.stdout)) == {"ok", "skip-rust", "late"}
