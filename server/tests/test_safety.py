"""Nothing at a pipe path is destroyed or written unless it is a FIFO the server may use."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import EchoServer, RawClient
from pipe_io_server import PipeIOServer


def make_intruder(path: Path, kind: str, tmp_path: Path) -> None:
    if kind == "file":
        path.write_bytes(b"precious")
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink-to-file":
        (tmp_path / "target").write_bytes(b"precious")
        path.symlink_to(tmp_path / "target")
    elif kind == "symlink-to-fifo":
        os.mkfifo(tmp_path / "target")
        path.symlink_to(tmp_path / "target")


KINDS = ["file", "directory", "symlink-to-file", "symlink-to-fifo"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("side", ["in", "out"])
def test_managed_path_holding_anything_but_a_fifo_is_refused(
    tmp_path: Path, kind: str, side: str
) -> None:
    in_pipe, out_pipe = tmp_path / "in", tmp_path / "out"
    intruder = in_pipe if side == "in" else out_pipe
    make_intruder(intruder, kind, tmp_path)
    before = os.lstat(intruder)
    with pytest.raises(FileExistsError, match="not a FIFO") as caught:
        PipeIOServer(str(in_pipe), str(out_pipe))
    assert caught.value.filename == str(intruder)
    after = os.lstat(intruder)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if kind in ("file", "symlink-to-file"):
        assert intruder.read_bytes() == b"precious"
    assert not (out_pipe if side == "in" else in_pipe).exists(), "no pipe left behind"


@pytest.mark.parametrize("kind", KINDS)
def test_unmanaged_path_holding_anything_but_a_fifo_is_refused(tmp_path: Path, kind: str) -> None:
    in_pipe, out_pipe = tmp_path / "in", tmp_path / "out"
    os.mkfifo(in_pipe)
    make_intruder(out_pipe, kind, tmp_path)
    server = EchoServer(str(in_pipe), str(out_pipe), manage_pipes=False)
    with pytest.raises(FileExistsError, match="not a FIFO"):
        server.start()
    if kind in ("file", "symlink-to-file"):
        assert out_pipe.read_bytes() == b"precious"
    assert stat.S_ISFIFO(os.lstat(in_pipe).st_mode)


def test_unmanaged_missing_path(tmp_path: Path) -> None:
    server = EchoServer(str(tmp_path / "in"), str(tmp_path / "out"), manage_pipes=False)
    with pytest.raises(FileNotFoundError):
        server.start()


def test_unmanaged_fifos_are_used_and_left_in_place(tmp_path: Path) -> None:
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    os.mkfifo(in_pipe)
    os.mkfifo(out_pipe)
    with EchoServer(in_pipe, out_pipe, manage_pipes=False) as server:
        client = RawClient(server.in_pipe, server.out_pipe)
        client.send(b"hi\n")
        assert client.recv() == b"hi"
        client.close()
    assert stat.S_ISFIFO(os.lstat(in_pipe).st_mode) and stat.S_ISFIFO(os.lstat(out_pipe).st_mode)


def test_existing_fifo_is_replaced(tmp_path: Path) -> None:
    in_pipe, out_pipe = tmp_path / "in", tmp_path / "out"
    os.mkfifo(in_pipe)
    os.chmod(in_pipe, 0o644)
    server = PipeIOServer(str(in_pipe), str(out_pipe))
    assert stat.S_IMODE(os.lstat(in_pipe).st_mode) == 0o600
    server.stop()
    assert not in_pipe.exists() and not out_pipe.exists()


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o666, 0o622])
def test_permissions_are_exact_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    previous = os.umask(0o077)
    try:
        server = PipeIOServer(str(tmp_path / "in"), str(tmp_path / "out"), permissions=mode)
    finally:
        os.umask(previous)
    for path in (server.in_pipe, server.out_pipe):
        assert stat.S_IMODE(os.lstat(path).st_mode) == mode
    server.stop()


def test_stop_leaves_a_path_the_user_replaced(tmp_path: Path) -> None:
    server = PipeIOServer(str(tmp_path / "in"), str(tmp_path / "out"))
    server.start()
    os.unlink(server.out_pipe)
    Path(server.out_pipe).write_bytes(b"user data")
    server.stop()
    assert Path(server.out_pipe).read_bytes() == b"user data"
    assert not Path(server.in_pipe).exists()


def test_one_path_for_both_pipes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two FIFOs"):
        PipeIOServer(str(tmp_path / "pipe"), str(tmp_path / "." / "pipe"))
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "in"
    with pytest.raises(FileNotFoundError, match="does not exist") as caught:
        PipeIOServer(str(missing), str(tmp_path / "out"))
    assert caught.value.filename == str(missing)
    assert os.listdir(tmp_path) == []
