"""Testing a port: a client or a server given on the command line, in neither registry."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.registry import REASON_PLACEHOLDER
from conformance.tests.conftest import BROKEN, HERE, ROOT

SPLIT = f"python3 {BROKEN}/port.py {{in}} {{out}} --fault split-on-cr"


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
        "server-stop-pipe-content-readable",
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


@pytest.mark.timeout(120)
def test_registries_and_lists_are_found_in_the_current_directory(
    suite: Any, tmp_path: Path
) -> None:
    """A port's repository: its own servers.toml and expected-failures/ where it runs."""
    port = tmp_path / "port"
    (port / "expected-failures").mkdir(parents=True)
    (port / "servers.toml").write_text(
        f'[split]\nrun = "{SPLIT}"\n'
        '[missing]\nrun = "no-such-server-xyz {in} {out}"\nneeds = ["no-such-server-xyz"]\n'
        'install = "build it first"\n'
    )
    (port / "expected-failures" / "server-split.txt").write_text("echo-cr CR splits\n")
    run = suite("--scenario=echo-cr,server-size-limit", cwd=port)
    assert run.status == 0, run.stdout + run.stderr
    assert run.outcome("server:split", "echo-cr") == "xfail"
    assert run.outcome("server:split", "server-size-limit") == "unsupported"
    assert run.outcome("server:missing", "echo-cr") == "skipped"
    assert "SKIPPED server:missing: needs no-such-server-xyz; install with: build it first" in (
        run.stdout
    )
    lines = run.stdout.strip().splitlines()
    assert lines[-4:] == [
        "skipped: 2 (not played)",
        "unsupported option: 1 (not played)",
        "xfail: 1",
        "0 passed, 0 failed",
    ]
    ci = suite("--scenario=echo-cr", cwd=port, env={"CI": "true"})
    assert ci.status == 1
    assert ci.stdout.strip().splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.timeout(180)
def test_update_expected_keeps_the_lists_honest(suite: Any, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "server-split.txt").write_text("echo-utf8 listed, though it passes\n")
    args = [
        f"--server=split={SPLIT}",
        "--scenario=echo-cr,echo-utf8",
        f"--expected-failures={lists}",
    ]
    run = suite(*args, "--update-expected")
    assert run.status == 1
    assert "added echo-cr: write the reason on each line" in run.stderr
    assert "removed echo-utf8 (they pass now)" in run.stderr
    refused = suite(*args)
    assert refused.status == 2
    assert "echo-cr: replace" in refused.stderr
    path = lists / "server-split.txt"
    path.write_text(path.read_text().replace(REASON_PLACEHOLDER, "CR is taken for a line end"))
    again = suite(*args)
    assert again.status == 0, again.stdout
    assert again.outcome("server:split", "echo-cr") == "xfail"


def test_export_writes_the_scenarios_and_overwrites_nothing(tmp_path: Path) -> None:
    target = tmp_path / "scenarios"
    done = list_run("--export", str(target))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(p.name for p in (ROOT / "conformance" / "scenarios").glob("*.toml"))
    assert list_run("--export", str(target)).returncode == 0  # the same files: nothing to do
    (target / "echo-cr.toml").write_text("# mine\n")
    done = list_run("--export", str(target))
    assert done.returncode == 2
    assert "echo-cr.toml exists and differs: nothing was written" in done.stderr
    assert (target / "echo-cr.toml").read_text() == "# mine\n"


def test_without_a_registry_the_error_says_what_to_give(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conformance"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "no clients.toml or servers.toml here or in conformance/: give --server" in done.stderr
