"""Each face keeps the contract faces.py states, on real FIFOs: the recorder relies on it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from pipe_io_server import BacklogFull

from soak.faces import FACES, Face


def server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pipe_io_server")]


def make(name: str, tmp_path: Path, handled: list[bytes], send_timeout: float = 0.5) -> Face:
    face: Face

    def handler(message: bytes) -> None:
        handled.append(message)
        face.send(message.upper())

    face = FACES[name](
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        max_message_size=1024,
        max_backlog=4096,
        send_timeout=send_timeout,
        handler=handler,
    )
    return face


@pytest.mark.parametrize("name", sorted(FACES))
def test_a_face_serves_then_stops_within_a_second_leaving_no_thread(
    name: str, tmp_path: Path
) -> None:
    handled: list[bytes] = []
    face = make(name, tmp_path, handled)
    face.start()
    try:
        assert os.path.exists(face.in_pipe) and os.path.exists(face.out_pipe)
        reader = os.open(face.out_pipe, os.O_RDONLY)
        writer = os.open(face.in_pipe, os.O_WRONLY)
        os.write(writer, b"one\ntwo\n")
        os.close(writer)
        got = b""
        while got.count(b"\n") < 2:
            got += os.read(reader, 100)
        os.close(reader)
    finally:
        began = time.monotonic()
        face.stop()
        seconds = time.monotonic() - began
    assert (handled, got) == ([b"one", b"two"], b"ONE\nTWO\n")
    assert seconds < 1.0
    assert server_threads() == []
    stats = face.stats()
    assert (stats["received"], stats["sent"], stats["handler_errors"]) == (2, 2, 0)


@pytest.mark.parametrize("name", sorted(FACES))
def test_a_send_waits_send_timeout_for_room_and_is_refused_once_stopped(
    name: str, tmp_path: Path
) -> None:
    """No reader: the backlog fills, a send waits send_timeout and raises BacklogFull; a send
    waiting when stop() comes raises ServerStopped (a RuntimeError), as the recorder expects."""
    face = make(name, tmp_path, [], send_timeout=0.3)
    face.start()
    outcomes: list[str] = []

    def send_until_refused() -> None:
        while True:
            try:
                face.send(b"x" * 1000)
            except BacklogFull:
                outcomes.append("BacklogFull")
            except RuntimeError as error:
                outcomes.append(type(error).__name__)
                return

    try:
        with pytest.raises(BacklogFull):
            for _ in range(10):
                began = time.monotonic()
                face.send(b"x" * 1000)
        assert time.monotonic() - began >= 0.3
        sender = threading.Thread(target=send_until_refused)
        sender.start()
        time.sleep(0.1)
    finally:
        face.stop()
    sender.join(5)
    assert not sender.is_alive()
    assert outcomes[-1:] == ["ServerStopped"]
    assert server_threads() == []


@pytest.mark.parametrize("name", sorted(FACES))
def test_a_face_whose_server_cannot_start_says_why_at_once(name: str, tmp_path: Path) -> None:
    face = FACES[name](
        str(tmp_path / "missing" / "in"),
        str(tmp_path / "out"),
        max_message_size=1024,
        max_backlog=4096,
        send_timeout=0.5,
        handler=lambda message: None,
    )
    began = time.monotonic()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        face.start()
    assert time.monotonic() - began < 5
    assert server_threads() == []
