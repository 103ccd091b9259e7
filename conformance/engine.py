"""Play one scenario against one testee and say what happened, in enough detail to act on."""

from __future__ import annotations

import errno
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import fifo
from .process import exit_text
from .registry import Testee
from .scenario import Payload, Scenario, Step
from .sides import (
    Failure,
    RawServer,
    ReferenceClients,
    ReferenceServer,
    Side,
    signal_number,
)

PREVIEW = 64
TRANSCRIPT = 12


@dataclass
class Result:
    passed: bool
    seconds: float
    message: str = ""
    details: list[str] = field(default_factory=list)


def preview(data: bytes, limit: int = PREVIEW) -> str:
    if len(data) <= limit:
        return repr(data)
    return f"{data[: limit - 12]!r}...{data[-8:]!r}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def difference(expected: bytes, got: bytes) -> list[str]:
    """Lengths, both values, and the first byte that differs."""
    index = 0
    limit = min(len(expected), len(got))
    block = 4096
    while index < limit and expected[index : index + block] == got[index : index + block]:
        index += block
    while index < limit and expected[index] == got[index]:
        index += 1
    index = min(index, limit)

    def byte_at(data: bytes) -> str:
        return f"0x{data[index]:02x}" if index < len(data) else "end of message"

    lines = [
        f"expected: {preview(expected)} ({plural(len(expected), 'byte')})",
        f"got:      {preview(got)} ({plural(len(got), 'byte')})",
        f"first difference at byte {index}: expected {byte_at(expected)}, got {byte_at(got)}",
    ]
    if max(len(expected), len(got)) > PREVIEW:
        start = max(0, index - 8)
        lines.append(
            f"around it: expected {expected[start : index + 16]!r}, got {got[start : index + 16]!r}"
        )
    return lines


@dataclass(frozen=True)
class At:
    """Where a step runs: its peer, its deadline, the scenario's, the repeat index."""

    peer: str
    deadline: float
    overall: float
    index: int


class Player:
    def __init__(self, scenario: Scenario, side: Side, scale: float) -> None:
        self.scenario = scenario
        self.side = side
        self.scale = scale
        self.transcript: list[str] = []

    def log(self, line: str) -> None:
        self.transcript.append(line)

    def deadline(self, step: Step, overall: float) -> float:
        within: float | None = step.args.get("within")
        if within is None:
            return overall
        return min(overall, time.monotonic() + within * self.scale)

    def play(self, steps: tuple[Step, ...], overall: float, index: int = 0) -> None:
        for step in steps:
            if step.role and step.role != self.side.testee_kind:
                continue
            try:
                self.step(step, overall, index)
            except fifo.Timeout:
                waited = "the scenario's timeout" if "within" not in step.args else "its limit"
                raise Failure(f"{step.where}: {step.text()}: timed out ({waited})") from None
            except BrokenPipeError:
                raise Failure(
                    f"{step.where}: {step.text()}: the pipe has no reader (EPIPE)"
                ) from None

    def step(self, step: Step, overall: float, index: int) -> None:
        at = At(str(step.args.get("peer", "a")), self.deadline(step, overall), overall, index)
        action: Callable[[Step, At], None] = getattr(self, f"do_{step.action}")
        action(step, at)

    def do_send(self, step: Step, at: At) -> None:
        self.send(step, at.peer, at.deadline, at.index)

    def do_expect(self, step: Step, at: At) -> None:
        self.expect(step, at.peer, at.deadline, at.index)

    def do_write(self, step: Step, at: At) -> None:
        data = step.payloads[0].at(at.index)
        self.side.write(at.peer, data, at.deadline)
        self.log(f"wrote raw {preview(data)} ({plural(len(data), 'byte')})")

    def do_expect_eof(self, step: Step, at: At) -> None:
        rest = self.side.eof_rest(at.peer, at.deadline)
        if rest:
            raise Failure(
                f"{step.where}: expected end of stream, got {plural(len(rest), 'more byte')}:"
                f" {preview(rest)}"
            )
        self.log("got end of stream")

    def do_expect_exit(self, step: Step, at: At) -> None:
        kind = self.side.testee_kind
        status = self.side.wait_exit(at.deadline)
        if status != step.value:
            within = step.args.get("within")
            limit = f" within {within} s" if within else ""
            raise Failure(
                f"{step.where}: expected the {kind} to exit with status {step.value}{limit}; "
                f"it {_state(status)}"
            )
        self.log(f"{kind} exited with status {status}")

    def do_pause(self, step: Step, at: At) -> None:
        time.sleep(min(step.value * self.scale, fifo.remaining(at.overall)))

    def do_start(self, step: Step, at: At) -> None:
        self.side.start(step.value, at.deadline)
        self.log(f"started {step.value}")

    def do_stop(self, step: Step, at: At) -> None:
        self.side.stop_server(at.deadline)
        self.log("stopped the server")

    def do_restart(self, step: Step, at: At) -> None:
        name = step.args.get("signal")
        self.side.restart(step.value, signal_number(name) if name else None, at.deadline)
        self.log(f"restarted the {step.value}" + (f" after SIG{name}" if name else ""))

    def do_kill(self, step: Step, at: At) -> None:
        self.side.kill(step.value, signal_number(step.args["signal"]), at.deadline)
        self.log(f"killed {step.value} with SIG{step.args['signal']}")

    def do_close(self, step: Step, at: At) -> None:
        self.side.close(at.peer, step.value)
        self.log(f"closed {step.value} side(s) of {at.peer}")

    def do_connect(self, step: Step, at: At) -> None:
        self.side.connect(step.value, list(step.args["open"]), at.deadline)
        self.log(f"connected {step.value} ({' then '.join(step.args['open'])})")

    def do_spawn(self, step: Step, at: At) -> None:
        data = step.payloads[0].at(at.index)
        self.side.spawn(step.value, data, step.args["then"], at.deadline)
        self.log(f"spawned {step.value}: wrote {preview(data)}, then {step.args['then']}")

    def do_read_bytes(self, step: Step, at: At) -> None:
        data = self.side.read_bytes(at.peer, step.value, at.deadline)
        self.log(f"read {plural(len(data), 'raw byte')} of {at.peer}")

    def do_repeat(self, step: Step, at: At) -> None:
        for round_index in range(step.value):
            self.play(step.steps, at.overall, round_index)

    def messages(self, step: Step, index: int) -> list[tuple[Payload, int]]:
        count = int(step.args.get("count", 1))
        if count > 1:
            return [(step.payloads[0], i) for i in range(count)]
        return [(payload, index) for payload in step.payloads]

    def send(self, step: Step, peer: str, deadline: float, index: int) -> None:
        error = step.args.get("error")
        messages = self.messages(step, index)
        for payload, i in messages:
            data = payload.at(i)
            try:
                self.side.send(peer, data, deadline)
            except OSError as problem:
                if error and problem.errno is not None and _errno_name(problem.errno) == error:
                    self.log(f"send failed with {error}, as expected")
                    return
                raise
            if error:
                raise Failure(f"{step.where}: expected the send to fail with {error}; it worked")
        self.log(self.summary("sent", messages))

    def expect(self, step: Step, peer: str, deadline: float, index: int) -> None:
        messages = self.messages(step, index)
        allowed = [p.at(index) for p in step.args.get("allow_before", ())]
        for number, (payload, i) in enumerate(messages, 1):
            want = payload.at(i)
            got = self.side.recv(peer, deadline)
            while got is not None and got != want and got in allowed:
                allowed.remove(got)
                self.log(f"got an allowed earlier message ({plural(len(got), 'byte')})")
                got = self.side.recv(peer, deadline)
            which = f"message {number} of {len(messages)}" if len(messages) > 1 else "the message"
            if got is None:
                raise Failure(
                    f"{step.where}: expected {which} {preview(want)} "
                    f"({plural(len(want), 'byte')}), got {self.side.end_text(peer)}"
                )
            if got != want:
                lines = [f"  {line}" for line in difference(want, got)]
                raise Failure(f"{step.where}: {which} differs", lines)
        self.log(self.summary("got back", messages))

    def summary(self, verb: str, messages: list[tuple[Payload, int]]) -> str:
        if len(messages) == 1:
            data = messages[0][0].at(messages[0][1])
            return f"{verb} {preview(data)} ({plural(len(data), 'byte')})"
        first = messages[0][0]
        if all(p is first for p, _ in messages) and first.indexed:
            return f"{verb} {len(messages)} messages, {first.description}"
        return f"{verb} {len(messages)} messages: " + ", ".join(
            preview(p.at(i), 24) for p, i in messages[:6]
        )


def _errno_name(number: int) -> str:
    return errno.errorcode.get(number, str(number))


def _state(status: int | None) -> str:
    return "is still running" if status is None else f"ended with {exit_text(status)}"


def make_side(scenario: Scenario, testee: Testee, workdir: Path) -> Side:
    if testee.kind == "server":
        return ReferenceClients(
            workdir,
            scenario.pipe_names,
            testee.run,
            testee.stop_signal,
            raw=scenario.client == "raw",
        )
    if scenario.server == "raw":
        return RawServer(workdir, scenario.pipe_names, testee.run)
    return ReferenceServer(workdir, scenario.pipe_names, testee.run)


def run(scenario: Scenario, testee: Testee, scale: float = 1.0) -> Result:
    """Play the scenario; never raises, never outlives the timeout by more than teardown."""
    started = time.monotonic()
    overall = started + scenario.timeout * scale
    workdir = Path(tempfile.mkdtemp(prefix=f"pio-{testee.name}-"))
    player: Player | None = None
    side: Side | None = None
    result = Result(True, 0.0)
    try:
        side = make_side(scenario, testee, workdir)
        player = Player(scenario, side, scale)
        order = ("server", "client")  # a scenario that wants another order says so in steps
        for item in order:
            if item in scenario.setup:
                side.start(item, overall)
        player.play(scenario.steps, overall)
    except Failure as failure:
        result = Result(False, 0.0, failure.message, list(failure.details))
    except fifo.Timeout:
        result = Result(False, 0.0, f"timed out after {scenario.timeout * scale:g} s (setup)")
    except Exception as error:  # a runner bug or an environment problem: still one cell
        result = Result(False, 0.0, f"runner error: {error!r}", traceback.format_exc().splitlines())
    finally:
        if side is not None:
            try:
                side.teardown()
            except Exception as error:
                if result.passed:
                    result = Result(False, 0.0, f"teardown error: {error!r}")
        result.seconds = time.monotonic() - started
        if not result.passed and side is not None and player is not None:
            result.details += ["what happened (last steps):"]
            result.details += [f"  {line}" for line in player.transcript[-TRANSCRIPT:]]
            result.details += side.diagnostics()
        shutil.rmtree(workdir, ignore_errors=True)
    return result
