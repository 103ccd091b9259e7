"""The suite as a port's CI uses it: the built wheel installed in a fresh venv, then
`pipe-io-server conformance --server ...` from an empty directory, on 3.9 too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.tests.conftest import ROOT

PYENV = Path.home() / ".pyenv" / "versions"
SCENARIOS = "echo-cr,server-size-limit,server-redeliver-short-message,server-writers-back-to-back"


def interpreters() -> list[str]:
    """This Python, and the oldest the package supports (3.9) where pyenv has it."""
    found = sorted(PYENV.glob("3.9.*/bin/python3"))
    return [sys.executable, *(str(found[-1]) for _ in found[-1:])]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("pipe_io_server-*.whl")
    return built


@pytest.mark.timeout(600)
@pytest.mark.parametrize("python", interpreters(), ids=lambda p: Path(p).parts[-3])
def test_the_installed_tool_checks_a_server_from_an_empty_directory(
    wheel: Path, python: str, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [
            str(venv / "bin" / "pipe-io-server"),
            "conformance",
            "--server",
            "pipe-io-server serve {in} {out} --max-message-size {max_message_size}",
            "--scenario",
            SCENARIOS,
            "--jobs",
            "2",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "4 passed, 0 failed"
    reports = empty / "conformance-reports"
    assert sorted(p.name for p in reports.iterdir()) == ["junit.xml", "report.html", "report.json"]
    data = json.loads((reports / "report.json").read_text())
    assert [t["label"] for t in data["testees"]] == ["server:cli"]
    assert sorted(p.name for p in empty.iterdir()) == ["conformance-reports"]
    exported = subprocess.run(
        [str(venv / "bin" / "pipe-io-server"), "conformance", "--export", "scenarios"],
        cwd=empty,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    names = {p.name for p in (empty / "scenarios").iterdir()}
    assert {"server-size-limit.toml", "echo-cr.toml"} <= names
    assert names == {p.name for p in (ROOT / "conformance" / "scenarios").glob("*.toml")}
