"""Nothing at a pipe path is destroyed or written unless it is a FIFO the server may use."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EchoServer, RawClient, finish, peer
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


def test_an_existing_fifo_of_ours_is_reused_with_our_mode(tmp_path: Path) -> None:
    in_pipe, out_pipe = tmp_path / "in", tmp_path / "out"
    os.mkfifo(in_pipe)
    os.chmod(in_pipe, 0o644)
    held = os.open(in_pipe, os.O_PATH)  # keeps the inode, so its number is not reused
    try:
        server = PipeIOServer(str(in_pipe), str(out_pipe))
        # The same inode: a client already waiting on it is not stranded.
        assert os.path.samestat(os.fstat(held), os.lstat(in_pipe))
    finally:
        os.close(held)
    assert stat.S_IMODE(os.lstat(in_pipe).st_mode) == 0o600
    server.stop()
    assert not in_pipe.exists() and not out_pipe.exists()


@pytest.mark.parametrize("side", ["in", "out"])
def test_a_client_waiting_in_open_before_the_server_exists_is_served(
    tmp_path: Path, side: str
) -> None:
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    os.mkfifo(in_pipe, 0o600)
    os.mkfifo(out_pipe, 0o600)
    if side == "in":
        early = peer("send", in_pipe, b"early\n".hex())
    else:
        early = peer("lines", out_pipe, "1")
    time.sleep(0.3)  # the client now waits in open() on the FIFO that exists
    with PipeIOServer(in_pipe, out_pipe) as server:
        if side == "in":
            finish(early)
            assert server.recv_message(timeout=10) == b"early"
        else:
            server.send_message(b"for the early one")
            assert finish(early) == b"for the early one".hex().encode() + b"\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a FIFO another user owns")
def test_a_fifo_owned_by_another_user_is_refused_naming_the_owner(tmp_path: Path) -> None:
    fifo = tmp_path / "in"
    os.mkfifo(fifo, 0o666)
    nobody = pwd.getpwnam("nobody")
    os.chown(fifo, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(PermissionError, match="nobody") as caught:
        PipeIOServer(str(fifo), str(tmp_path / "out"))
    assert caught.value.filename == str(fifo)
    assert os.lstat(fifo).st_uid == nobody.pw_uid  # left as it was
    assert sorted(os.listdir(tmp_path)) == ["in"]


def test_a_second_server_on_live_paths_is_refused(tmp_path: Path) -> None:
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    with EchoServer(in_pipe, out_pipe) as first:
        with pytest.raises(FileExistsError, match="another server is serving"):
            PipeIOServer(in_pipe, out_pipe)
        client = RawClient(first.in_pipe, first.out_pipe)  # the first one still serves
        client.send(b"still mine\n")
        assert client.recv() == b"still mine"
        client.close()


def test_the_fifos_of_a_killed_server_are_reused(tmp_path: Path) -> None:
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    code = (
        "import sys, time; from pipe_io_server import PipeIOServer; "
        "s = PipeIOServer(sys.argv[1], sys.argv[2]); s.start(); print('up', flush=True); "
        "time.sleep(60)"
    )
    dead = subprocess.Popen([sys.executable, "-c", code, in_pipe, out_pipe], stdout=subprocess.PIPE)
    assert dead.stdout is not None and dead.stdout.readline() == b"up\n"
    dead.kill()
    dead.wait()
    with EchoServer(in_pipe, out_pipe) as server:
        client = RawClient(server.in_pipe, server.out_pipe)
        client.send(b"after a crash\n")
        assert client.recv() == b"after a crash"
        client.close()


def test_one_fifo_reached_by_two_names_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="two FIFOs"):
        PipeIOServer(str(tmp_path / "real" / "pipe"), str(tmp_path / "alias" / "pipe"))
    assert os.listdir(tmp_path / "real") == []


def test_relative_paths_survive_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = EchoServer("in", "out")
    server.start()
    monkeypatch.chdir("/")
    server.stop()
    assert os.listdir(tmp_path) == []


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


def test_a_refused_construction_leaves_fifos_the_user_already_had(tmp_path: Path) -> None:
    """Two names for one FIFO (a hard link): refused, and both names stay."""
    os.mkfifo(tmp_path / "in", 0o600)
    os.link(tmp_path / "in", tmp_path / "out")
    with pytest.raises(ValueError, match="two FIFOs"):
        PipeIOServer(str(tmp_path / "in"), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]
