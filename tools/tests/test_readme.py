"""The README's examples run as written: the shell snippet every time, the Python servers
stopping cleanly on SIGTERM and on Ctrl-C. Paths under /tmp move into the test's own folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from check_doc_examples import Example, examples

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = str(Path(sys.executable).parent)
RUNS = 50


def moved(code: str, folder: Path) -> str:
    assert "/tmp/app" in code
    return code.replace("/tmp/app", f"{folder}/app")


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("app"))


def test_the_shell_snippet_works_every_time(tmp_path: Path) -> None:
    (snippet,) = [block for block in examples(README, "sh") if "pio_open" in block.code]
    script = tmp_path / "snippet.sh"
    script.write_text(moved(snippet.code, tmp_path))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    for run in range(RUNS):
        done = subprocess.run(
            ["bash", "-e", str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (done.returncode, done.stdout.splitlines()[-1:]) == (0, ["hello %s -n"]), (
            f"run {run + 1} of {RUNS}:\n{done.stdout}{done.stderr}"
        )
        assert leftovers(tmp_path) == [], f"run {run + 1} left them behind"


@pytest.fixture
def interruptible() -> Iterator[None]:
    """Children get Python's Ctrl-C handling even if this process was started ignoring SIGINT."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


PYTHON_EXAMPLES = examples(README, "python")


@pytest.mark.usefixtures("interruptible")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize(
    "example", PYTHON_EXAMPLES, ids=[f"README.md:{e.line}" for e in PYTHON_EXAMPLES]
)
def test_a_python_example_stops_cleanly(tmp_path: Path, example: Example, stop: int) -> None:
    code = moved(example.code, tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        in_pipe, out_pipe = tmp_path / "app-in", tmp_path / "app-out"
        deadline = time.monotonic() + 30
        while not (in_pipe.is_fifo() and out_pipe.is_fifo()):
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.02)
        reply = subprocess.run(
            ["sh", "-c", 'printf "ping\\n" > "$1" && head -n 1 "$2"', "sh", in_pipe, out_pipe],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert reply.stdout.strip().lower() == "ping", reply
        server.send_signal(stop)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert (server.returncode, err) == (0, ""), out + err
    assert leftovers(tmp_path) == []
