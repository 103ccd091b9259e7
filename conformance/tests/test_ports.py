"""Testing a port: a client or a server given on the command line, in neither registry."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.tests.conftest import BROKEN, HERE, ROOT


@pytest.mark.timeout(120)
def test_client_given_on_the_command_line_is_built_and_played(suite: Any, tmp_path: Path) -> None:
    port = tmp_path / "my port"
    run = suite(
        f"--client=myport=python3 {str(port / 'echo.py')!r} {{recv}} {{send}}",
        f"--build=mkdir -p {str(port)!r} && cp {HERE / 'echo_ok.py'} {str(port / 'echo.py')!r}",
        "--scenario=echo-plain-ascii,echo-cr,client-server-stops",
    )
    assert run.status == 0, run.stdout + run.stderr
    assert (port / "echo.py").exists()
    assert run.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"
    assert [t["label"] for t in run.report["testees"]] == ["myport"]
    assert "building myport" in run.stderr
    junit = ET.parse(run.reports / "junit.xml").getroot()
    cases = junit.findall("./testsuite[@name='myport']/testcase")
    assert sorted(str(c.get("name")) for c in cases) == sorted(
        ["echo-plain-ascii", "echo-cr", "client-server-stops"]
    )


@pytest.mark.timeout(120)
def test_server_given_on_the_command_line_is_played(suite: Any) -> None:
    run = suite(
        "--server=bridge=pipe-io-server serve --exec cat {in} {out}",
        "--scenario=echo-cr,server-open-recv-first,server-stop-with-clients-attached",
    )
    assert run.status == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"
    assert [t["label"] for t in run.report["testees"]] == ["server:bridge"]


@pytest.mark.timeout(120)
def test_expected_failures_and_unexpected_passes(suite: Any, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "cr.txt").write_text("# comment\necho-cr splits on CR, on purpose\n")
    (lists / "control.txt").write_text("echo-cr listed although it passes\n")
    cr = f"python3 {BROKEN.relative_to(ROOT)}/split-on-cr.py {{recv}} {{send}}"
    control = f"python3 {HERE.relative_to(ROOT)}/echo_ok.py {{recv}} {{send}}"
    run = suite(
        f"--client=cr={cr}",
        f"--client=control={control}",
        "--scenario=echo-cr",
        f"--expected-failures={lists}",
    )
    assert run.outcome("cr", "echo-cr") == "xfail"
    assert run.outcome("control", "echo-cr") == "xpass"
    lines = run.stdout.strip().splitlines()
    assert lines[-3:] == [
        "unexpected passes: 1 (counted as failed)",
        "xfail: 1",
        "0 passed, 1 failed",
    ]
    assert run.status == 1
    assert "XPASS control / echo-cr" in run.stdout

    (lists / "control.txt").write_text("")
    run = suite(f"--client=cr={cr}", "--scenario=echo-cr", f"--expected-failures={lists}")
    assert run.status == 0, run.stdout
    assert run.stdout.strip().splitlines()[-2:] == ["xfail: 1", "0 passed, 0 failed"]


def list_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", "--list", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_only_and_scenario_filters_select_rows_and_columns() -> None:
    done = list_run(
        "--only", "python,reference", "--scenario", "echo-c*", "--scenario", "server-stop-*"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    scenarios = [line.split()[0] for line in lines if not line.startswith(("python:", "server:"))]
    assert scenarios == [
        "echo-cr",
        "server-stop-idle",
        "server-stop-with-clients-attached",
        "server-stop-writer-blocked",
    ]
    testees = [line.split(": ")[0] for line in lines if line.startswith(("python:", "server:"))]
    assert testees == ["python", "server:reference"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client", "x=./echo"], "must contain {recv} and {send}"),
        (["--server", "./serve {in}"], "must contain {in} and {out}"),
        (["--only", "cobol"], "no client or server named cobol"),
        (["--build", "make"], "--build goes after the --client it builds"),
    ],
)
def test_command_line_mistakes_are_explained(args: list[str], message: str) -> None:
    done = list_run(*args)
    assert done.returncode == 2
    assert message in done.stderr
