"""Child processes under test: own process group, output kept in files, always reaped."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def child_env() -> dict[str, str]:
    """The runner's environment with its Python's bin folder first on PATH.

    So `pipe-io-server` and `python3` in the registries mean the ones installed with
    the runner (the project's virtual environment under `make`).
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def substitute(template: str, **paths: str) -> str:
    """Fill {name} placeholders with shell-quoted values; other braces stay as they are."""
    result = template
    for name, value in paths.items():
        result = result.replace("{" + name + "}", shlex.quote(value))
    return result


class Child:
    """A command run through /bin/sh in a new session, so a kill reaches all of it.

    Commands run from the runner's current directory (the repository root under make).
    """

    def __init__(self, command: str, workdir: Path, label: str) -> None:
        self.command = command
        self.label = label
        self.stderr_path = workdir / f"{label}.stderr"
        self.stdout_path = workdir / f"{label}.stdout"
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.popen = subprocess.Popen(
                ["/bin/sh", "-c", "exec " + command],
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(max(timeout, 0))
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def finish(self, grace: float) -> None:
        """Wait up to `grace` seconds, then kill the whole group and reap."""
        if self.wait(grace) is None:
            self.signal(signal.SIGKILL)
            self.popen.wait()
        else:
            # The group may hold children that outlived the leader.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)

    def stderr_tail(self, limit: int = 2000) -> str:
        return file_tail(self.stderr_path, limit)

    def stdout_tail(self, limit: int = 500) -> str:
        return file_tail(self.stdout_path, limit)


def file_tail(path: Path, limit: int = 2000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if len(data) > limit:
        data = b"[...]" + data[-limit:]
    return data.decode("utf-8", "replace").rstrip()


def exit_text(status: int | None) -> str:
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def run_build(command: str, timeout: float) -> tuple[bool, str, float]:
    """Run a build command from the current directory; (ok, output tail, seconds)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            shell=True,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"build timed out after {timeout:.0f} s", time.monotonic() - started
    output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
    if len(output) > 3000:
        output = "[...]" + output[-3000:]
    ok = done.returncode == 0
    if not ok:
        output = f"build failed ({exit_text(done.returncode)}): {command}\n{output}"
    return ok, output, time.monotonic() - started
