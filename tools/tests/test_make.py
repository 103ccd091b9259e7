"""The Makefile checks the interpreter first; the soak that `make test` runs says one verdict."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Interpreters older than the package supports, where the machine has some (pyenv keeps them).
OLD_PYTHONS = sorted(
    path
    for pattern in ("2.*", "3.[0-8].*")
    for path in glob.glob(os.path.expanduser(f"~/.pyenv/versions/{pattern}/bin/python"))
)


def python_check(python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "python-check", f"PYTHON={python}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_this_interpreter_passes() -> None:
    done = python_check(sys.executable)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("python", ["no-such-python", *OLD_PYTHONS])
def test_an_old_or_missing_interpreter_gets_one_line_naming_the_version(python: str) -> None:
    done = python_check(python)
    assert done.returncode != 0
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith(f"pipe-io-server needs Python 3.9 or newer; {python} is ")
    assert lines[0].endswith("choose another with PYTHON=python3.X")


def test_the_soak_leaves_its_summary_in_the_file_and_one_verdict_line_on_screen(
    tmp_path: Path,
) -> None:
    summary = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "soak", "--duration", "2", "--seed", "5", "--json", str(summary)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("soak: no violation in ") and "(seed 5)" in lines[-1]
    assert len(lines) == 3, done.stdout
    assert json.loads(summary.read_text())["seed"] == 5
