"""`pipe-io-server serve` given bad input: one line naming the cause, non-zero status, no pipe left.

Each case runs the real command in a fresh folder and then checks that the folder holds
exactly what the test put there: a refused start never leaves a FIFO behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def serve(
    cwd: Path, *args: str, prefix: list[str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "pipe_io_server", "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The checks every case shares; returns the error line."""
    assert result.returncode != 0, result
    assert result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return result.stderr


def test_missing_directory(tmp_path: Path) -> None:
    result = serve(tmp_path, "missing/in", "missing/out")
    refused(result, "missing/in", "No such file or directory")
    assert contents(tmp_path) == []


def test_second_path_in_a_missing_directory_leaves_no_first_pipe(tmp_path: Path) -> None:
    result = serve(tmp_path, "in", "missing/out")
    refused(result, "missing/out", "No such file or directory")
    assert contents(tmp_path) == []


@pytest.mark.parametrize("which", ["in", "out"])
def test_regular_file_at_a_pipe_path_is_refused_and_kept(tmp_path: Path, which: str) -> None:
    (tmp_path / which).write_text("precious")
    refused(serve(tmp_path, "in", "out"), which, "regular file")
    assert (tmp_path / which).read_text() == "precious"
    assert contents(tmp_path) == [which]


@pytest.mark.parametrize("target", ["file", "fifo", "nowhere"])
def test_symlink_at_a_pipe_path_is_refused(tmp_path: Path, target: str) -> None:
    if target == "file":
        (tmp_path / target).write_text("precious")
    elif target == "fifo":
        os.mkfifo(tmp_path / target)
    (tmp_path / "in").symlink_to(target)
    refused(serve(tmp_path, "in", "out"), "in", "symbolic link")
    assert contents(tmp_path) == sorted(["in", *([target] if target != "nowhere" else [])])
    if target == "file":
        assert (tmp_path / "file").read_text() == "precious"


def test_directory_at_a_pipe_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    refused(serve(tmp_path, "in", "out"), "out", "directory")
    assert contents(tmp_path) == ["out"]


def test_path_through_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    refused(serve(tmp_path, "file/in", "out"), "Not a directory")
    assert contents(tmp_path) == ["file"]


def _unwritable(tmp_path: Path) -> tuple[Path, list[str]]:
    """A folder the server may not write in, and how to run as someone bound by its mode.

    Root ignores file modes through CAP_DAC_OVERRIDE; dropping that capability (setpriv)
    makes root as bound by a mode of 0555 as any user, which is what the case is about.
    """
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return folder, []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder unwritable for root")
    return folder, [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def test_unwritable_location(tmp_path: Path) -> None:
    folder, prefix = _unwritable(tmp_path)
    result = serve(tmp_path, "locked/in", "locked/out", prefix=prefix)
    refused(result, "locked/in", "Permission denied")
    assert contents(folder) == []


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        ([], "required"),
        (["in", "out", "extra"], "unrecognized arguments: extra"),
        (["in", "out", "--max-message-size", "lots"], "invalid size 'lots'"),
        (["in", "out", "--permissions", "rwx"], "--permissions"),
        (["in", "out", "--permissions", "999"], "octal mode from 0 to 777"),
        (["in", "out", "--permissions", "7777"], "octal mode from 0 to 777"),
        (["in", "out", "--permissions", "-1"], "octal mode from 0 to 777"),
        (["in", "out", "--send-timeout", "soon"], "invalid time 'soon'"),
    ],
)
def test_wrong_arguments(tmp_path: Path, args: list[str], cause: str) -> None:
    refused(serve(tmp_path, *args), cause)
    assert contents(tmp_path) == []


def test_same_path_for_in_and_out_is_refused(tmp_path: Path) -> None:
    refused(serve(tmp_path, "pipe", "pipe"), "pipe", "two FIFOs")
    assert contents(tmp_path) == []


@pytest.mark.parametrize(
    ("command", "cause"),
    [
        ("no-such-program-here", "no-such-program-here: command not found"),
        ("./not-executable", "./not-executable: permission denied"),
        ("", "--exec needs a command"),
    ],
)
def test_exec_that_cannot_run(tmp_path: Path, command: str, cause: str) -> None:
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    refused(serve(tmp_path, "in", "out", "--exec", command), cause)
    assert contents(tmp_path) == ["not-executable"]


@pytest.mark.parametrize(
    ("command", "cause", "status"),
    [
        ("false", "false exited with status 1", 1),
        ("sh -c 'exit 7'", "sh exited with status 7", 7),
        ("sh -c 'kill -9 $$'", "killed by signal 9", None),
    ],
)
def test_exec_that_dies_at_once(
    tmp_path: Path, command: str, cause: str, status: int | None
) -> None:
    result = serve(tmp_path, "in", "out", "--exec", command)
    # The server was up, and said so, before the command ended: then one line says why.
    ready, _, rest = result.stderr.partition("\n")
    assert ready.startswith("pipe-io-server: serving: clients write ")
    refused(subprocess.CompletedProcess(result.args, result.returncode, "", rest), cause)
    if status is not None:
        assert result.returncode == status
    assert contents(tmp_path) == []
