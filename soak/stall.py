"""A CMD that stops reading: `pipe-io-server serve IN OUT --exec CMD --send-timeout T`.

Now and then the driver runs this episode in a child of its own, on paths of its own: CMD
(stall_cmd.py) echoes N lines and then reads no more, while writers keep sending, until the
server reports that it drops messages for CMD. Then SIGTERM. What the episode saw goes to
seen.json, and check() judges it:
- the first N messages come back whole, and each writer's in the order it wrote them;
- the server says that CMD stopped reading (the stall was reached);
- SIGTERM ends serve within a second with status 0, and leaves no FIFO and no process of
  CMD's group behind (the episode is their subreaper, so it sees them go).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from . import wire

PR_SET_CHILD_SUBREAPER = 36
STOP_PROMISE = 1.0  # serve's promise: a signal ends it within a second
STALL_WAIT = 30.0  # for the server to report the stall and the echoes to arrive
STALL_REPORT = "has not read its input for"
READ_AGAIN_REPORT = "reads again;"  # CMD never does here: counted, see the summary
Seen = dict[str, Any]


class _Traffic:
    """Writers sending framed messages of at most PIPE_BUF bytes, and one reader."""

    def __init__(self, folder: Path, rng: random.Random, writers: int) -> None:
        self.folder = folder
        self.rng = rng
        self.stop = threading.Event()
        self.written = [0] * writers
        self.echoes = bytearray()
        self.threads = [
            threading.Thread(target=self._write, args=(w,), daemon=True) for w in range(writers)
        ]
        self.threads.append(threading.Thread(target=self._read, daemon=True))
        for thread in self.threads:
            thread.start()

    def _write(self, number: int) -> None:
        rng = random.Random(self.rng.random())
        fd = os.open(self.folder / "in", os.O_WRONLY | os.O_CLOEXEC)
        try:
            while not self.stop.is_set():
                seq = self.written[number]
                data = wire.body(rng, rng.randint(0, 3500))
                message = wire.frame(f"s{number}", seq, data)[0] + wire.NEWLINE
                os.write(fd, message)  # at most PIPE_BUF bytes: whole or not at all
                self.written[number] = seq + 1
        except BrokenPipeError:
            pass  # the server has gone
        finally:
            os.close(fd)

    def _read(self) -> None:
        fd = os.open(self.folder / "out", os.O_RDONLY | os.O_CLOEXEC)
        try:
            while data := os.read(fd, 1 << 16):
                self.echoes += data
        finally:
            os.close(fd)

    def lines(self) -> int:
        return self.echoes.count(wire.NEWLINE)

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


def episode(spec: dict[str, Any]) -> None:
    """The body of the episode's process (clients.run bounds it with an alarm)."""
    folder = Path(spec["dir"]) / f"stall{spec['cid']}"
    folder.mkdir()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
    cmd = [sys.executable, str(Path(__file__).with_name("stall_cmd.py"))]
    cmd += [str(spec["echoes"]), str(folder / "pids")]
    argv = [sys.executable, "-m", "pipe_io_server", "serve", "in", "out", "--exec", shlex.join(cmd)]
    argv += ["--send-timeout", str(spec["send_timeout"]), "--ready-file", "ready"]
    with (folder / "serve.err").open("wb") as err:
        serve = subprocess.Popen(
            argv,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    seen: Seen = {"echoes_due": spec["echoes"], "send_timeout": spec["send_timeout"]}
    try:
        rng = random.Random(f"{spec['seed']}:stall:{spec['cid']}")
        seen.update(_run(folder, serve, rng, spec["echoes"]))
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        seen.update(_leftovers(folder))
        seen["stderr"] = (folder / "serve.err").read_text(errors="replace")[-3000:]
        (folder / "seen.json").write_text(json.dumps(seen))


def _run(folder: Path, serve: subprocess.Popen[bytes], rng: random.Random, due: int) -> Seen:
    deadline = time.monotonic() + 20
    while not (folder / "ready").exists():
        if serve.poll() is not None or time.monotonic() > deadline:
            return {"ready": False}
        time.sleep(0.01)
    traffic = _Traffic(folder, rng, rng.randint(1, 3))
    err = folder / "serve.err"
    deadline = time.monotonic() + STALL_WAIT
    while time.monotonic() < deadline:
        if STALL_REPORT in err.read_text(errors="replace") and traffic.lines() >= due:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.3))  # SIGTERM while messages for CMD are being dropped
    began = time.monotonic()
    serve.send_signal(signal.SIGTERM)
    while serve.poll() is None and time.monotonic() - began < 10:
        time.sleep(0.002)
    seconds = time.monotonic() - began
    traffic.end()
    return {
        "ready": True,
        "stall_reports": err.read_text(errors="replace").count(STALL_REPORT),
        "read_again_reports": err.read_text(errors="replace").count(READ_AGAIN_REPORT),
        "exit_seconds": seconds,
        "status": serve.poll(),
        "written": traffic.written,
        "echoes": bytes(traffic.echoes).hex(),
    }


def _leftovers(folder: Path) -> Seen:
    """FIFOs in the folder, and CMD's processes still there a second after serve ended
    (zombies reaped first: the episode is their subreaper). Whatever is found is ended."""
    fifos = sorted(p.name for p in folder.iterdir() if stat.S_ISFIFO(p.lstat().st_mode))
    pids: list[int] = []
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = [int(word) for word in (folder / "pids").read_text().split()]
    deadline = time.monotonic() + 1.0
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        left = [pid for pid in pids if _exists(os.kill, pid)]
        if pids and _exists(os.killpg, pids[0]):
            left.append(-pids[0])
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for name in fifos:
        (folder / name).unlink()
    return {"cmd_pids": pids, "fifos_left": fifos, "processes_left": left}


def _exists(kill: Callable[[int, int], None], target: int) -> bool:
    """Whether a process (os.kill) or a process group (os.killpg) is there."""
    try:
        kill(target, 0)
    except ProcessLookupError:
        return False
    return True


def check(seen: Seen) -> list[tuple[str, str]]:
    """The violations an episode shows, as (kind, detail)."""
    if not seen.get("ready"):
        return [("serve --exec did not start", seen.get("stderr", ""))]
    found = []
    found += _check_echoes(seen)
    if not seen["stall_reports"]:
        found.append(
            (
                "CMD stopped reading, and serve never said so",
                f"no '{STALL_REPORT}' in {STALL_WAIT} s of writing; written: {seen['written']}",
            )
        )
    if seen["status"] is None or seen["exit_seconds"] > STOP_PROMISE:
        found.append(
            (
                "serve --exec did not end within a second of SIGTERM",
                f"{seen['exit_seconds']:.3f} s, CMD not reading, messages for it dropped",
            )
        )
    elif seen["status"] != 0:
        found.append(("serve --exec ended on SIGTERM with a failure", f"status {seen['status']}"))
    if seen["fifos_left"]:
        found.append(("serve --exec left FIFOs behind", str(seen["fifos_left"])))
    if seen["processes_left"]:
        found.append(
            (
                "serve --exec left CMD's processes behind",
                f"CMD and its child {seen['cmd_pids']}: still there a second later "
                f"{seen['processes_left']} (negative: the process group)",
            )
        )
    if "Traceback" in seen["stderr"]:
        found.append(("serve --exec printed a traceback", seen["stderr"]))
    return found


def _check_echoes(seen: Seen) -> list[tuple[str, str]]:
    """CMD echoed the first N messages the server handled: whole, and for each writer its
    first messages in order."""
    lines = bytes.fromhex(seen["echoes"]).split(wire.NEWLINE)
    if lines[-1]:
        return [("echo of CMD cut short", wire.evidence(lines[-1]))]
    lines.pop()
    expected: dict[str, int] = {}
    for line in lines:
        parsed = wire.parse(line)
        if parsed is None:
            return [("echo of CMD garbled", wire.evidence(line))]
        if parsed.seq != expected.get(parsed.tag, 0):
            return [
                (
                    "echoes of CMD out of order",
                    f"{parsed.tag}:{parsed.seq} after {expected.get(parsed.tag, 0)} messages "
                    f"of {parsed.tag}",
                )
            ]
        expected[parsed.tag] = parsed.seq + 1
    if len(lines) != seen["echoes_due"]:
        return [
            (
                "echoes of CMD missing",
                f"{len(lines)} of the {seen['echoes_due']} lines CMD printed came back "
                f"within {STALL_WAIT} s; written: {seen['written']}",
            )
        ]
    return []
