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
from .process import exit_text, substitute
from .registry import Testee
from .scenario import OPTIONS, Payload, Scenario, Step
from .sides import (
    Failure,
    How,
    RawServer,
    ReferenceClients,
    ReferenceServer,
    Side,
    Writers,
    signal_number,
)

PREVIEW = 64
TRANSCRIPT = 12  # last steps shown under a failure in the terminal
KEPT_STEPS = 400  # steps kept per cell for the HTML report


@dataclass
class Result:
    passed: bool
    seconds: float
    message: str = ""
    details: list[str] = field(default_factory=list)
    verdict: str | None = None  # "skipped" or "unsupported": the cell was not played
    steps: list[str] = field(default_factory=list)
    processes: list[dict[str, str]] = field(default_factory=list)


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


@dataclass
class Tally:
    """How far a step got, for the report of a timeout."""

    verb: str
    total: int
    done: int = 0
    last: bytes = b""

    def add(self, message: bytes) -> None:
        self.done += 1
        self.last = message

    def __str__(self) -> str:
        text = f"{self.verb} {self.done} of {plural(self.total, 'message')}"
        return text + (f", the last: {preview(self.last)}" if self.done else "")


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
        self.progress: Callable[[], str] = str  # what the current step did so far

    def log(self, line: str) -> None:
        if len(self.transcript) == KEPT_STEPS:
            self.transcript.append("[later steps not kept]")
        elif len(self.transcript) < KEPT_STEPS:
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
            self.progress = str
            try:
                self.step(step, overall, index)
            except fifo.Timeout:
                waited = "the scenario's timeout" if "within" not in step.args else "its limit"
                done = self.progress()
                raise Failure(
                    f"{step.where}: {step.text()}: timed out ({waited})"
                    + (f"; {done}" if done else "")
                ) from None
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
        how = How(bool(step.args.get("nonblocking")), bool(step.args.get("background")))
        self.side.connect(step.value, list(step.args["open"]), at.deadline, how)
        self.log(f"connected {step.value} ({' then '.join(step.args['open'])})")

    def do_spawn(self, step: Step, at: At) -> None:
        data = step.payloads[0].at(at.index)
        self.side.spawn(step.value, data, step.args["then"], at.deadline)
        self.log(f"spawned {step.value}: wrote {preview(data)}, then {step.args['then']}")

    def do_read_bytes(self, step: Step, at: At) -> None:
        data = self.side.read_bytes(at.peer, step.value, at.deadline)
        if len(data) < step.value:
            raise Failure(
                f"{step.where}: expected {plural(step.value, 'byte')}, got end of file after "
                f"{plural(len(data), 'byte')}: {preview(data)}"
            )
        self.log(f"read exactly {plural(len(data), 'raw byte')} as {at.peer}: {preview(data)}")

    def do_writers(self, step: Step, at: At) -> None:
        count, first = int(step.args["count"]), int(step.args.get("first", 0))
        payload = step.payloads[0]
        messages = [[payload.at(first + i, w) for i in range(count)] for w in range(step.value)]
        sent = [0] * step.value
        self.progress = lambda: (
            "messages written by each writer: " + ", ".join(f"{n}/{count}" for n in sent)
        )
        plan = Writers(
            messages, int(step.args["sessions"]), bool(step.args.get("idle_sessions")), sent
        )
        self.side.writers(plan, at.deadline)
        self.log(
            f"{step.value} writers at once wrote {count} messages each "
            f"({payload.description}) over {step.args['sessions']} session(s) each"
        )

    def do_create_pipes(self, step: Step, at: At) -> None:
        self.side.create_pipes()
        self.log("created both FIFOs before the server")

    def do_expect_pipes_removed(self, step: Step, at: At) -> None:
        left = self.side.pipes_left(at.deadline)
        if left:
            raise Failure(
                f"{step.where}: the server stopped but left {', '.join(left)} "
                "(a server removes the FIFOs it created)"
            )
        self.log("both FIFOs are gone")

    def do_repeat(self, step: Step, at: At) -> None:
        for round_index in range(step.value):
            self.play(step.steps, at.overall, round_index)

    def messages(self, step: Step, index: int) -> list[tuple[Payload, int]]:
        if "count" in step.args or "first" in step.args:
            first = int(step.args.get("first", 0))
            count = int(step.args.get("count", 1))
            return [(step.payloads[0], i) for i in range(first, first + count)]
        return [(payload, index) for payload in step.payloads]

    def send(self, step: Step, peer: str, deadline: float, index: int) -> None:
        error = step.args.get("error")
        messages = self.messages(step, index)
        tally = Tally("sent", len(messages))
        self.progress = tally.__str__
        for payload, i in messages:
            data = payload.at(i)
            try:
                self.side.send(peer, data, deadline)
                tally.add(data)
            except OSError as problem:
                if error and problem.errno is not None and _errno_name(problem.errno) == error:
                    self.log(f"send failed with {error}, as expected")
                    return
                raise
            if error:
                raise Failure(f"{step.where}: expected the send to fail with {error}; it worked")
        self.log(self.summary("sent", messages))

    def expect(self, step: Step, peer: str, deadline: float, index: int) -> None:
        if "writers" in step.args:
            self.expect_writers(step, peer, deadline)
            return
        messages = self.messages(step, index)
        allowed = [p.at(index) for p in step.args.get("allow_before", ())]
        tally = Tally("received", len(messages))
        self.progress = tally.__str__
        for number, (payload, i) in enumerate(messages, 1):
            want = payload.at(i)
            # A raw reader takes no more than this out of the pipe (exact partial reads).
            limit = max([len(want), *map(len, allowed)]) + 1
            got = self.side.recv(peer, deadline, limit)
            while got is not None and got != want and got in allowed:
                allowed.remove(got)
                self.log(f"got an allowed earlier message ({plural(len(got), 'byte')})")
                got = self.side.recv(peer, deadline, limit)
            which = f"message {number} of {len(messages)}" if len(messages) > 1 else "the message"
            if got is None:
                raise Failure(
                    f"{step.where}: expected {which} {preview(want)} "
                    f"({plural(len(want), 'byte')}), got {self.side.end_text(peer)}"
                )
            if got != want:
                lines = [f"  {line}" for line in difference(want, got)]
                if number > 1:
                    lines.append(f"  the {plural(number - 1, 'message')} before it were right")
                raise Failure(f"{step.where}: {which} differs", lines)
            tally.add(want)
        self.log(self.summary("got back", messages))

    def expect_writers(self, step: Step, peer: str, deadline: float) -> None:
        """Every message of every writer once, each writer's in order, in any interleaving."""
        writers, count = int(step.args["writers"]), int(step.args.get("count", 1))
        first = int(step.args.get("first", 0))
        payload = step.payloads[0]
        owner = {payload.at(first + i, w): (w, i) for w in range(writers) for i in range(count)}
        limit = max(map(len, owner)) + 1
        taken = [0] * writers
        total = writers * count
        last: list[bytes] = [b""]
        self.progress = lambda: (
            f"received {sum(taken)} of {total} messages (per writer: "
            + ", ".join(f"{n}/{count}" for n in taken)
            + (f"), the last: {preview(last[0])}" if sum(taken) else ")")
        )
        for number in range(1, total + 1):
            got = self.side.recv(peer, deadline, limit)
            if got is None:
                raise Failure(
                    f"{step.where}: expected {total} messages, got {self.side.end_text(peer)} "
                    f"after {number - 1}; {self.progress()}"
                )
            if got not in owner:
                raise Failure(
                    f"{step.where}: message {number} of {total} is none of the writers' "
                    f"messages (a fragment, or two glued): {preview(got)} "
                    f"({plural(len(got), 'byte')}); {self.progress()}"
                )
            w, i = owner[got]
            if i != taken[w]:
                what = "again" if i < taken[w] else f"before message {taken[w]} of that writer"
                raise Failure(
                    f"{step.where}: writer {w}'s message {i} came {what}: {preview(got)}; "
                    f"{self.progress()}"
                )
            taken[w] += 1
            last[0] = got
        self.log(f"got back all {total} messages of {writers} writers, each writer's in order")

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


def missing_options(scenario: Scenario, testee: Testee) -> list[str]:
    """Options the scenario sets that the server's command has no placeholder for."""
    if testee.kind != "server":
        return []
    return [name for name in scenario.server_options if "{" + name + "}" not in testee.run]


def server_command(scenario: Scenario, testee: Testee) -> str:
    """The server's command with every option placeholder filled (the default where unset)."""
    values = {
        name: str(scenario.server_options.get(name, default)) for name, default in OPTIONS.items()
    }
    return substitute(testee.run, **values)


def make_side(scenario: Scenario, testee: Testee, workdir: Path) -> Side:
    if testee.kind == "server":
        return ReferenceClients(
            workdir,
            scenario.pipe_names,
            server_command(scenario, testee),
            testee.stop_signal,
            raw=scenario.client == "raw",
        )
    if scenario.server == "raw":
        return RawServer(workdir, scenario.pipe_names, testee.run)
    return ReferenceServer(workdir, scenario.pipe_names, testee.run, dict(scenario.server_options))


def unsupported(scenario: Scenario, testee: Testee) -> Result | None:
    """The verdict for a server whose command cannot take an option the scenario sets."""
    missing = missing_options(scenario, testee)
    if not missing:
        return None
    return Result(
        False,
        0.0,
        "unsupported option: the server's command has no "
        + ", ".join("{" + name + "}" for name in missing)
        + f" placeholder, and the scenario sets {', '.join(missing)}",
        verdict="unsupported",
    )


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
            result = _finish(result, side, player)
        result.seconds = time.monotonic() - started
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _finish(result: Result, side: Side, player: Player | None) -> Result:
    """Tear the side down; keep the steps and processes, and explain a failure."""
    try:
        side.teardown()
    except Exception as error:
        if result.passed:
            result = Result(False, 0.0, f"teardown error: {error!r}")
    result.steps = player.transcript if player is not None else []
    result.processes = side.processes()
    if not result.passed:
        result.details += ["what happened (last steps):"]
        result.details += [f"  {line}" for line in result.steps[-TRANSCRIPT:]]
        result.details += side.diagnostics()
    return result
