"""The clients' echo examples, built as conformance/clients.toml says, and their echo rates."""

from __future__ import annotations

import glob
import shlex
import subprocess
import tempfile
import threading
import time
from typing import Any

import tomllib  # the runner is a tool of the project's venv (Python 3.11)

from .cases import ROOT, BenchError

CLIENT_ORDER = ["bash", "c", "java", "js", "python", "cat"]
# Not a client: a byte echo that parses nothing, to show how fast the driver itself can go.
CAT = "bash -c 'exec cat < {recv} > {send}'"


def _load_clients() -> dict[str, dict[str, str]]:
    with open(ROOT / "conformance" / "clients.toml", "rb") as table:
        clients: dict[str, dict[str, str]] = tomllib.load(table)
    return clients


def prepare_clients() -> tuple[dict[str, str], dict[str, str]]:
    """Build each client once. Returns (runnable: name -> run command, skipped: name -> why)."""
    runnable: dict[str, str] = {}
    skipped: dict[str, str] = {}
    table = _load_clients()
    for name in sorted(table, key=lambda n: [*CLIENT_ORDER, n].index(n)):
        entry = table[name]
        words = shlex.split(entry["run"]) + shlex.split(entry.get("build", ""))
        files = [w for w in words if w.startswith("clients/")]
        missing = [f for f in files if not glob.glob(str(ROOT / f))]
        if missing or not (ROOT / "clients" / name).is_dir():
            skipped[name] = "missing (" + ", ".join(missing or [f"clients/{name}"]) + ")"
            continue
        if "build" in entry:
            done = subprocess.run(
                ["bash", "-c", entry["build"]],
                check=False,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                skipped[name] = "build failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
                continue
        runnable[name] = entry["run"]
    runnable["cat"] = CAT
    return runnable, skipped


def client_rate(run: str, seconds: float) -> dict[str, Any]:
    """Echo rate of one client's echo example, driven by the reference server in-process.

    The rate counts from the first echo to the last, so start-up (a JVM's, say) is left out.
    """
    from pipe_io_server import PipeIOServer  # noqa: PLC0415 (only this case needs it)

    burst, window = 256, 4096
    payload = b"x" * 64
    state = {"received": 0, "target": 0, "bad": 0, "first": 0.0, "last": 0.0}
    reached = threading.Event()

    class Driver(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            now = time.perf_counter()
            if message != payload:
                state["bad"] += 1
            if not state["received"]:
                state["first"] = now
            state["last"] = now
            state["received"] += 1
            if state["received"] >= state["target"]:
                reached.set()

    def wait_for(target: int, deadline: float) -> None:
        state["target"] = target
        reached.clear()
        while state["received"] < target:
            if client.poll() is not None:
                raise BenchError(f"ended after echoing {state['received']} of {sent} messages")
            if time.monotonic() > deadline:
                raise BenchError(f"echoed {state['received']} of {sent} messages, then stalled")
            reached.wait(0.2)

    with tempfile.TemporaryDirectory(prefix="pio-bench-") as tmp:
        in_pipe, out_pipe = f"{tmp}/in", f"{tmp}/out"
        server = Driver(in_pipe, out_pipe)
        server.start()
        argv = shlex.split(run.format(recv=out_pipe, send=in_pipe))
        client = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, text=True,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        sent, failure = 0, ""
        try:
            hard_deadline = time.monotonic() + seconds + 60
            while not state["received"] or state["last"] - state["first"] < seconds:
                for _ in range(burst):
                    server.send_message(payload)
                sent += burst
                wait_for(sent - window + burst, hard_deadline)
            wait_for(sent, hard_deadline)
        except BenchError as error:
            failure = f"{error}; "
        finally:
            server.stop()
            try:
                _, err = client.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                client.kill()
                _, err = client.communicate()
        if failure or client.returncode != 0:
            raise BenchError(f"{failure}exit status {client.returncode}: {err.strip()[-300:]}")
        if state["bad"]:
            raise BenchError(f"{state['bad']} echoes differ from the message sent")
        elapsed = state["last"] - state["first"]
        return {"messages": sent, "msgs_per_s": (sent - 1) / elapsed if elapsed else 0.0}
