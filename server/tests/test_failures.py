"""No half-dead server: whatever goes wrong in a server thread ends in a logged, clean stop, and
a transient shortage (the fd limit) is waited out, not died of."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import EchoServer, RawClient, ServerProcess, eventually, finish, peer, wait_ready
from pipe_io_server import PipeIOServer


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pipe_io_server")]


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_base_exception_from_the_handler_stops_the_server_cleanly(
    pipes: tuple[str, str], error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    before = open_fds()
    server = PipeIOServer(*pipes)

    def handle(message: bytes) -> None:
        raise error

    server.handle_message = handle  # type: ignore[method-assign]
    server.start()
    finish(peer("send", server.in_pipe, b"bye\n".hex()))
    assert server.wait(5), "the server looks alive with a dead reader thread"
    assert eventually(lambda: not server_threads(), 5)
    assert not os.path.exists(pipes[0]) and not os.path.exists(pipes[1])
    assert server.stats.error is not None and type(error).__name__ in server.stats.error
    assert type(error).__name__ in caplog.text
    assert open_fds() <= before, "descriptors leaked"


def test_an_internal_error_in_the_reader_thread_is_a_clean_stop(
    pipes: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A descriptor closed under the server (a bug elsewhere in the process) is such an error."""
    server = EchoServer(*pipes)
    server.start()
    target = os.path.realpath(pipes[0])
    stolen = [fd for fd in map(int, os.listdir("/proc/self/fd")) if _reads(fd, target)]
    assert len(stolen) == 1
    os.close(stolen[0])  # a poll() under way still holds the pipe: a writer wakes it
    client = RawClient(server.in_pipe)
    with contextlib.suppress(BrokenPipeError):
        client.send(b"x\n")
    client.close()
    assert server.wait(5)
    assert server.stats.error is not None and "reader" in server.stats.error
    assert "reader" in caplog.text
    assert eventually(lambda: not server_threads(), 5)
    assert not os.path.exists(pipes[1])


def _reads(fd: int, target: str) -> bool:
    """A read end of `target` (not the server's O_PATH handle on it)."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
        with open(f"/proc/self/fdinfo/{fd}") as info:
            flags = int(info.read().split("flags:")[1].split()[0], 8)
    except OSError:
        return False
    return path == target and flags & (os.O_PATH | os.O_ACCMODE) == os.O_RDONLY


def test_after_stop_returns_the_handler_is_never_called_again(
    pipes: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    stopped = threading.Event()
    late: list[bytes] = []
    handled = threading.Event()

    class Slow(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            if stopped.is_set():
                late.append(message)
            handled.set()
            time.sleep(0.0002)

    server = Slow(*pipes)
    server.start()
    client = RawClient(server.in_pipe)
    client.send(b"".join(b"%d\n" % i for i in range(100_000)))  # one read: a long batch
    assert handled.wait(10)
    server.stop()
    stopped.set()
    time.sleep(0.5)
    client.close()
    assert late == []
    assert server.stats.unhandled_at_stop > 0
    assert caplog.text.count("not handled") == 1


def test_stop_from_another_thread_while_a_handler_runs(pipes: tuple[str, str]) -> None:
    """The running handler finishes; the stop still returns within a second."""
    entered, release = threading.Event(), threading.Event()

    class Busy(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            entered.set()
            release.wait(3)

    server = Busy(*pipes)
    server.start()
    client = RawClient(server.in_pipe)
    client.send(b"a\nb\n")
    assert entered.wait(10)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    release.set()
    client.close()
    assert eventually(lambda: server.stats.unhandled_at_stop == 1, 5)
    assert server.stats.received == 2


def test_a_reply_accepted_before_stop_counts_as_sent_and_as_dropped(pipes: tuple[str, str]) -> None:
    """A reply collected with the others of its read (send_message returned) and never written
    counts as sent, like one in the backlog, and as dropped at stop."""
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    class Replies(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            self.send_message(b"re:" + message)
            returned.set()
            entered.set()
            release.wait(3)

    server = Replies(*pipes)
    server.start()
    client = RawClient(server.in_pipe)
    client.send(b"a\nb\n")  # one read of two messages: their replies are collected together
    assert entered.wait(10) and returned.is_set()
    server.stop()
    release.set()
    client.close()
    assert eventually(lambda: server.stats.unhandled_at_stop == 1, 5)
    assert eventually(lambda: server.stats.dropped_at_stop == 1, 5)
    assert server.stats.sent == 1


@pytest.mark.parametrize("face", ["echo", "aio"], ids=["threaded", "asyncio"])
def test_the_fd_limit_is_waited_out_and_service_resumes(pipes: tuple[str, str], face: str) -> None:
    server = ServerProcess(*pipes, face)
    try:
        client = RawClient(*pipes)
        client.send(b"before\n")
        assert client.recv() == b"before"
        assert int(server.ask("exhaust")) > 0
        client.close()  # both of the server's threads now need a new descriptor
        time.sleep(0.3)
        late = peer("send", pipes[0], b"during\n".hex())
        reader = peer("lines", pipes[1], "1")
        time.sleep(0.5)
        assert server.ask("release") == "released"
        finish(late)
        assert finish(reader) == b"during".hex().encode() + b"\n"
        stats = server.ask("stats")
        seconds, left, threads, waited = server.ask("stop").split()
        assert (left, threads, waited) == ("0", "0", "True")
        assert float(seconds) < 1.5
        log = server.close()
    finally:
        server.close()
    assert "Traceback" not in log
    assert "Too many open files" in log  # said once per shortage, not per retry
    assert log.count("Too many open files") <= 4
    assert "'error': None" in stats


@pytest.mark.parametrize("face", ["echo", "aio"], ids=["threaded", "asyncio"])
def test_stop_at_the_fd_limit_is_clean(pipes: tuple[str, str], face: str) -> None:
    server = ServerProcess(*pipes, face)
    try:
        client = RawClient(*pipes)
        client.send(b"x\n")
        assert client.recv() == b"x"
        client.close()  # the writer now waits for the next reader in open()
        time.sleep(0.3)
        assert int(server.ask("exhaust")) > 0
        seconds, left, threads, waited = server.ask("stop").split()
    finally:
        server.close()
    assert (left, threads, waited) == ("0", "0", "True")
    assert float(seconds) < 1.5


def test_a_writer_blocked_in_a_handler_send_does_not_outlive_stop(pipes: tuple[str, str]) -> None:
    """A handler waiting for backlog room is released by stop() with a clean error."""
    server = PipeIOServer(*pipes, max_backlog=10, send_timeout=None)
    errors: list[Exception] = []
    server.handle_message = lambda m: server.send_message(m * 20)  # type: ignore[method-assign]
    server.on_handler_error = lambda m, e: errors.append(e)  # type: ignore[method-assign]
    server.start()
    sender = peer("send", server.in_pipe, b"a\nb\n".hex(), "hold")
    wait_ready(sender)
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    sender.kill()
    sender.wait()
    assert eventually(lambda: not server_threads(), 5)


def test_a_client_waiting_in_open_of_out_pipe_sees_end_of_file_at_stop(
    pipes: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipe_io_server")
    with EchoServer(*pipes) as server:
        first = RawClient(server.in_pipe, server.out_pipe)  # the reader being served
        second = peer("lines", server.out_pipe, "1")  # waits its turn
        time.sleep(0.3)
    assert finish(second, 5) == b"\n"  # no line: end of file
    first.close()


def test_a_start_that_fails_half_way_leaves_no_thread_and_no_fifo(pipes: tuple[str, str]) -> None:
    """At the fd limit the writer cannot get its descriptors after the reader started."""
    code = (
        "import os, resource, sys, threading\n"
        "from pipe_io_server import PipeIOServer\n"
        "server = PipeIOServer(sys.argv[1], sys.argv[2])\n"
        "used = len(os.listdir('/proc/self/fd'))\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (used + 3, used + 3))\n"
        "try:\n"
        "    server.start()\n"
        "except OSError as error:\n"
        "    print('refused', error.strerror)\n"
        "names = [t.name for t in threading.enumerate() if t.name.startswith('pipe_io')]\n"
        "print(names, server.wait(1), [os.path.exists(p) for p in sys.argv[1:]])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *pipes],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.splitlines() == [
        "refused Too many open files",
        "[] True [False, False]",
    ], done.stdout + done.stderr
