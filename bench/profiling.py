"""Where our server spends its time per message (`make bench-profile`).

py-spy samples the server's threads while a case runs; each sample is charged to a step of
the message path (poll, read, framing, ...), named by the deepest frame in the server and the
source text of its line, so the steps survive edits that move lines.

Sampling slows the server (by a third on the ping-pong path), so it runs in a second run of
the case: the first gives the figures and the server's CPU time per message (schedstat), and
a step's time per message is its share of the samples times that CPU time.

The load client runs under SCHED_IDLE while sampled. Otherwise, on one CPU, the client woken
by the server's write would preempt the server inside that write, and every sample taken
while the client runs would be charged to the write.

py-spy reads a frame's line where the last call left it, so the bytecode between two calls
is charged to the line of the first: the steps are right to a call or so.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from .cases import ROOT

RATE = 200  # samples per second
# (step, file, function pattern, text in the line); the first that matches names the step.
STEPS = [
    ("poll", "reader.py", "_read_and_dispatch", "poll("),
    ("read", "reader.py", "_read_and_dispatch", "readv("),
    ("framing", "reader.py", "_read_and_dispatch", "buffer_updated("),
    ("framing", "framing.py", "", ""),
    ("prune", "reader.py", "_read_and_dispatch", "_before_read("),
    ("prune", "writer.py", "prune", ""),
    ("dispatch", "reader.py", "_read_and_dispatch", "_dispatch("),
    ("handler call", "server.py", "_dispatch", "handler("),
    ("dispatch", "server.py", "_dispatch", ""),
    ("handler call", "echo_server.py", "handle_message", ""),
    ("send_message", "server.py", "send_message", ""),
    ("lock", "writer.py", "", "self._lock"),
    ("write", "writer.py", "", "writev("),
    ("batching", "writer.py", "cork|uncork|_release_batch|_push_batch|_room", ""),
    ("send", "writer.py", "send", ""),
    ("outbound bookkeeping", "writer.py", "_flush", ""),
    ("outbound bookkeeping", "backlog.py", "", ""),
    ("reader loop", "reader.py", "", ""),
    ("writer, other", "writer.py", "", ""),
]
_FRAME = re.compile(r"(?P<function>\S+) \((?P<file>[^:]+):(?P<line>\d+)\)")


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """Time on a CPU of each thread of the process so far, in ns."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return times


class Profile:
    """py-spy on our server while a case runs, written out as its time per message by step."""

    def __init__(self, folded: Path) -> None:
        self.folded = folded

    @contextlib.contextmanager
    def sampling(self, pid: int) -> Iterator[None]:
        py_spy = Path(sys.executable).parent / "py-spy"
        argv = [str(py_spy), "record", "--pid", str(pid), "--threads", "--nonblocking"]
        spy = subprocess.Popen(
            [*argv, "--format", "raw", "--rate", str(RATE), "--output", str(self.folded)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)  # attached before the load starts
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.communicate()

    def write(self, title: str, cpu_us: float) -> None:
        """`cpu_us`: the server's CPU time per message in a run without sampling."""
        self.folded.with_suffix(".txt").write_text(summary(self.folded, title, cpu_us))


class _Source:
    """Lines of the files named in the samples: the server's, and the bench's echo server."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def line(self, file: str, number: int) -> str:
        if file not in self._lines:
            path = next((p for p in (ROOT / "server" / file, ROOT / file) if p.is_file()), None)
            self._lines[file] = path.read_text().splitlines() if path else []
        lines = self._lines[file]
        return lines[number - 1] if 0 < number <= len(lines) else ""


def _ours(file: str) -> bool:
    return file.startswith("pipe_io_server/") or file.endswith("echo_server.py")


def step_of(frames: list[str], source: _Source) -> tuple[str, str]:
    """(step, the frame charged): the deepest frame of the server in a sample's stack."""
    for frame in reversed(frames):
        match = _FRAME.fullmatch(frame)
        if not match or not _ours(match["file"]):
            continue
        file, function = match["file"], match["function"].rpartition(".")[2]
        text = source.line(file, int(match["line"]))
        for step, step_file, functions, needle in STEPS:
            if (
                file.endswith("/" + step_file)
                and (not functions or re.fullmatch(functions, function))
                and needle in text
            ):
                return step, frame
        return f"other: {match['function']}", frame
    return "outside the server", frames[-1] if frames else "?"


def summary(folded: Path, title: str, cpu_us: float, top: int = 15) -> str:
    """Per thread and step, the server's CPU time per message, and the lines that take it."""
    source = _Source()
    steps: dict[str, Counter[str]] = defaultdict(Counter)
    lines: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in folded.read_text().splitlines():
        stack, _, count_text = entry.rpartition(" ")
        frames = stack.split(";")[1:]  # the first names the thread
        if not frames or frames[-1].startswith("sigwait "):
            continue  # echo_server.py's main thread, waiting for the stop signal
        runs = [f.split(" ")[0] for f in frames if f.split(" ")[0].endswith("._run")]
        thread = runs[0].split(".")[0].lower() + " thread" if runs else frames[0]
        step, frame = step_of(frames, source)
        steps[thread][step] += int(count_text)
        lines[thread][f"{frame}  {_text(frame, source)}"] += int(count_text)
    total = sum(sum(counter.values()) for counter in steps.values()) or 1
    us = cpu_us / total  # per sample
    out = [
        f"{title}: {cpu_us:.3f} µs of CPU per message in our server (schedstat, unsampled run);",
        f"its division from {total} py-spy samples at {RATE} Hz in a second run",
    ]
    for thread, counter in sorted(steps.items(), key=lambda item: -item[1].total()):
        out.append(f"\n{thread}: {us * counter.total():.3f} µs per message")
        out.append(f"  {'step':<24} {'µs/msg':>8} {'share':>7}")
        for step, n in counter.most_common():
            out.append(f"  {step:<24} {us * n:8.3f} {100 * n / total:6.1f}%")
        out.append("  lines, by the deepest frame in the server:")
        out += [f"  {100 * n / total:6.1f}%  {line}" for line, n in lines[thread].most_common(top)]
    return "\n".join(out) + "\n"


def _text(frame: str, source: _Source) -> str:
    match = _FRAME.fullmatch(frame)
    return source.line(match["file"], int(match["line"])).strip() if match else ""
