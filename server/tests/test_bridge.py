"""`serve --exec CMD` in every state of CMD: it stops on a signal within a second, leaves no FIFO
and no process behind, and never lets CMD's pipes grow the server or block it for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import RawClient, connect, flood, serve
from pipe_io_server.bridge import Bridge

# What "within a second" is allowed on a loaded two-core machine.
STOP_BOUND = 1.5


def stop_time(server: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> float:
    started = time.monotonic()
    server.send_signal(signum)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        pytest.fail("the server ignored the signal for 10 s")
    return time.monotonic() - started


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def pid_from(path: Path) -> int:
    deadline = time.monotonic() + 10
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    return int(path.read_text())


def left_behind(tmp_path: Path, *pids: int) -> list[str]:
    found = [name for name in ("in", "out") if (tmp_path / name).exists()]
    return found + [f"process {pid}" for pid in pids if alive(pid)]


def test_sigterm_while_cmd_never_reads_and_clients_keep_writing(tmp_path: Path) -> None:
    pidfile = tmp_path / "cmd.pid"
    server = serve(tmp_path, "--exec", f"sh -c 'echo $$ > {pidfile}; exec sleep 100'")
    connect(tmp_path).close()
    writer = flood(str(tmp_path / "in"), b"x" * 1000 + b"\n", 60)
    time.sleep(1)  # CMD's stdin and in_pipe are full: the writer waits
    assert stop_time(server) < STOP_BOUND
    writer.kill()
    writer.wait()
    assert left_behind(tmp_path, pid_from(pidfile)) == []


def test_sigterm_after_cmd_exited_while_its_child_holds_its_output(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    server = serve(tmp_path, "--exec", f"sh -c 'sleep 100 & echo $! > {pidfile}; echo hi'")
    client = connect(tmp_path)
    assert client.recv() == b"hi"
    child = pid_from(pidfile)
    time.sleep(0.3)  # CMD has exited; its child still holds the output pipe
    assert stop_time(server) < STOP_BOUND
    client.close()
    assert left_behind(tmp_path, child) == []


def test_cmd_that_exited_ends_the_server_even_when_its_child_holds_its_output(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child.pid"
    server = serve(tmp_path, "--exec", f"sh -c 'sleep 100 & echo $! > {pidfile}; exit 4'")
    client = connect(tmp_path)
    assert server.wait(10) == 4
    client.close()
    assert left_behind(tmp_path, pid_from(pidfile)) == []


def test_sigterm_while_the_last_output_waits_for_a_reader(tmp_path: Path) -> None:
    server = serve(tmp_path, "--exec", "sh -c 'echo last words'")
    time.sleep(1)  # CMD has exited; no reader ever comes for its last line
    assert server.poll() is None
    assert stop_time(server) < STOP_BOUND
    assert left_behind(tmp_path) == []


def test_a_second_signal_ends_it_at_once(tmp_path: Path) -> None:
    pidfile = tmp_path / "cmd.pid"
    command = f"sh -c 'trap \"\" TERM INT; echo $$ > {pidfile}; while :; do sleep 1; done'"
    server = serve(tmp_path, "--exec", command)
    connect(tmp_path).close()
    cmd = pid_from(pidfile)
    server.send_signal(signal.SIGINT)
    assert stop_time(server, signal.SIGINT) < STOP_BOUND
    assert left_behind(tmp_path, cmd) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_each_stop_signal_ends_the_bridge_and_its_command(tmp_path: Path, signum: int) -> None:
    pidfile = tmp_path / "cmd.pid"
    server = serve(tmp_path, "--exec", f"sh -c 'echo $$ > {pidfile}; exec cat'")
    client = connect(tmp_path)
    client.send(b"ping\n")
    assert client.recv() == b"ping"
    assert stop_time(server, signum) < STOP_BOUND
    assert server.returncode == 0
    client.close()
    assert left_behind(tmp_path, pid_from(pidfile)) == []


def test_writing_to_a_cmd_that_never_reads_does_not_block_reading(tmp_path: Path) -> None:
    server = serve(tmp_path, "--exec", "sleep 100", "--send-timeout", "0.5")
    connect(tmp_path).close()
    writer = flood(str(tmp_path / "in"), b"y" * 1000 + b"\n", 3)
    writer.wait(20)  # the server keeps reading: it drops what CMD does not take
    assert writer.returncode == 0
    stop_time(server)
    log = server.stderr.read().decode()  # type: ignore[union-attr]
    assert "not read its input" in log and "Traceback" not in log


def test_output_without_newlines_is_limited_like_input(tmp_path: Path) -> None:
    code = (
        "import sys; out = sys.stdout.buffer; "
        "[out.write(b'z' * 1_000_000) for _ in range(100)]; out.write(b'\\nafter\\n')"
    )
    server = serve(tmp_path, "--exec", f"python3 -c {code!r}", "--max-message-size", "1048576")
    client = connect(tmp_path)
    assert client.recv() == b"after"
    with open(f"/proc/{server.pid}/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    assert peak < 60 * 1024, f"the server grew to {peak // 1024} MiB"
    assert server.wait(10) == 0
    client.close()
    log = server.stderr.read().decode()  # type: ignore[union-attr]
    assert "100000000 bytes" in log and "max_message_size" in log


def test_messages_after_cmd_exited_are_counted_once_not_a_traceback_each(tmp_path: Path) -> None:
    server = serve(tmp_path, "--exec", "head -n 1")
    client = connect(tmp_path)
    client.send(b"first\n")
    assert client.recv() == b"first"
    time.sleep(0.3)  # head has exited
    for i in range(200):
        try:
            client.send(b"late %d\n" % i)
        except BrokenPipeError:
            break  # the server ended with its command: also a fine outcome
    assert server.wait(10) == 0
    client.close()
    log = server.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in log
    assert log.count("has exited") <= 1
    if "has exited" in log:
        assert "not delivered to it" in log


def test_cmd_not_found_is_one_line_without_errno_noise(tmp_path: Path) -> None:
    server = serve(tmp_path, "--exec", "no-such-program-here --flag")
    assert server.wait(10) != 0
    err = server.stderr.read().decode()  # type: ignore[union-attr]
    assert err.count("\n") == 1 and "no-such-program-here" in err and "Errno" not in err
    assert left_behind(tmp_path) == []


def test_no_traceback_when_a_signal_stops_a_busy_echo(tmp_path: Path) -> None:
    server = serve(tmp_path)
    client = connect(tmp_path)
    writer = flood(str(tmp_path / "in"), b"w\n" * 30_000, 60)
    time.sleep(0.3)
    assert stop_time(server) < STOP_BOUND
    writer.kill()
    writer.wait()
    client.close()
    assert b"Traceback" not in server.stderr.read()  # type: ignore[union-attr]
    assert os.path.exists(tmp_path / "in") is False


def test_serve_ends_when_its_server_stops_by_itself(tmp_path: Path) -> None:
    """A server thread that fails stops the server; the command then exits, status 1."""
    code = (
        "import sys; from pipe_io_server import cli, server\n"
        "def boom(self, message): raise SystemExit(9)\n"
        "server.PipeIOServer.send_message = boom\n"
        "sys.exit(cli.main(['serve', sys.argv[1], sys.argv[2]]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "in"), str(tmp_path / "out")],
        stderr=subprocess.PIPE,
    )
    client = connect(tmp_path)
    client.send(b"x\n")
    assert process.wait(10) == 1
    client.close()
    log = process.stderr.read().decode()  # type: ignore[union-attr]
    assert "SystemExit(9)" in log and "the server stops" in log
    assert left_behind(tmp_path) == []


def test_a_bridge_thread_that_fails_ends_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its output descriptor replaced under it (a bug elsewhere in the process, here a folder
    put in its place): its read fails; that is logged and ends the session."""
    ended = threading.Event()
    bridge = Bridge(
        ["cat"], max_backlog=None, send_timeout=1, max_message_size=None, on_failure=ended.set
    )
    server = bridge.server(str(tmp_path / "in"), str(tmp_path / "out"))
    server.start()
    bridge.start()
    assert bridge.process.stdout is not None
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.dup2(folder, bridge.process.stdout.fileno())  # cat's next line wakes the thread on it
    os.close(folder)
    client = RawClient(server.in_pipe)
    client.send(b"wake up\n")
    assert ended.wait(10)
    server.stop()
    bridge.stop()
    client.close()
    assert bridge.failure is not None and "output" in bridge.failure
    assert "the server stops" in caplog.text
    assert not alive(bridge.process.pid)
