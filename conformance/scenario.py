"""Scenario files: load, check and describe them; build their payloads.

A scenario is data (one TOML file in scenarios/); this module is the only place that
knows the file format, so a mistake in a file is reported with the file and the key.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package, for older Pythons
    import tomli as tomllib

SCENARIO_DIR = Path(__file__).parent / "scenarios"
ROLES = ("client", "server", "both")
SETUP_ITEMS = ("server", "client")
ACTIONS = (
    "send",
    "write",
    "expect",
    "expect_eof",
    "expect_exit",
    "pause",
    "start",
    "stop",
    "kill",
    "close",
    "connect",
    "spawn",
    "read_bytes",
    "repeat",
    "restart",
    "writers",
    "create_pipes",
    "expect_pipes_removed",
)
# Keys a step may carry besides its action, per action.
MODIFIERS: dict[str, frozenset[str]] = {
    "send": frozenset({"count", "first", "peer", "error", "within", "role"}),
    "write": frozenset({"peer", "within", "role"}),
    "expect": frozenset({"count", "first", "writers", "peer", "within", "allow_before", "role"}),
    "expect_eof": frozenset({"peer", "within", "role"}),
    "expect_exit": frozenset({"within", "role"}),
    "pause": frozenset({"role"}),
    "start": frozenset({"role"}),
    "stop": frozenset({"role"}),
    "kill": frozenset({"signal", "role"}),
    "close": frozenset({"peer", "role"}),
    "connect": frozenset({"open", "nonblocking", "background", "within", "role"}),
    "spawn": frozenset({"write", "then", "within", "role"}),
    "read_bytes": frozenset({"peer", "within", "role"}),
    "repeat": frozenset({"steps", "role"}),
    "restart": frozenset({"signal", "within", "role"}),
    "writers": frozenset({"send", "count", "sessions", "idle_sessions", "within", "role"}),
    "create_pipes": frozenset({"role"}),
    "expect_pipes_removed": frozenset({"within", "role"}),
}
# Server options a scenario may set (`server_options`), with the protocol's defaults: a server
# command receives them through placeholders such as {max_message_size}.
OPTIONS: dict[str, int] = {"max_message_size": 64 << 20}
SIDES = ("send", "recv", "both")
SIGNALS = ("KILL", "TERM", "INT")
UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


class ScenarioError(ValueError):
    """A scenario file that does not follow the format (names the file and the place)."""


def parse_size(value: object, where: str) -> int:
    """Sizes are integers (underscores allowed) or strings like "16 MiB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*", value)
        if match:
            return int(match.group(1)) * UNITS[match.group(2) or ""]
    raise ScenarioError(f"{where}: {value!r} is not a size (an integer, or like '16 MiB')")


@dataclass(frozen=True, eq=False)
class Payload:
    """The bytes of one message (or one per index for `format`), built on first use.

    Forms in a file: a string (UTF-8); {hex = "ff 00"}; {repeat = "ab", size = "1 MiB"}
    or {repeat = "ab", count = 3}; {random = "1 MiB", seed = 7} (random bytes, 0x0A made
    0x0B so it stays one message) or {random = ..., seed = ..., printable = true} (0x20 to
    0x7E only); {format = "message {i}"} (one per index; {w} is the writer of a `writers`
    step), with size = N to pad it with dots to N bytes.
    """

    spec: Mapping[str, Any]
    description: str

    @cached_property
    def _fixed(self) -> bytes:
        spec = self.spec
        if "text" in spec:
            return str(spec["text"]).encode("utf-8")
        if "hex" in spec:
            return bytes.fromhex(spec["hex"])
        if "repeat" in spec:
            unit = str(spec["repeat"]).encode("utf-8")
            if "size" in spec:
                size: int = spec["size"]
                return (unit * (size // len(unit) + 1))[:size]
            return unit * int(spec["count"])
        if "random" in spec:
            data = random.Random(spec["seed"]).randbytes(spec["random"])
            return data.translate(_PRINTABLE if spec.get("printable") else _NO_NEWLINE)
        raise AssertionError(spec)

    @property
    def indexed(self) -> bool:
        return "format" in self.spec

    def at(self, index: int = 0, writer: int = 0) -> bytes:
        if self.indexed:
            data = str(self.spec["format"]).format(i=index, w=writer).encode("utf-8")
            return data.ljust(int(self.spec.get("size", 0)), b".")
        return self._fixed

    def __len__(self) -> int:
        return len(self.at(0))


# Random bytes keep their spread: 0x0A becomes 0x0B; printable maps onto 0x20..0x7E.
_NO_NEWLINE = bytes.maketrans(b"\n", b"\x0b")
_PRINTABLE = bytes(0x20 + byte % 95 for byte in range(256))


def _payload(value: object, where: str, *, raw: bool = False) -> Payload:
    if isinstance(value, str):
        spec: dict[str, Any] = {"text": value}
    elif isinstance(value, dict):
        spec = dict(value)
    else:
        raise ScenarioError(f"{where}: a payload is a string or a table, not {value!r}")
    kinds = [k for k in _PAYLOAD_KEYS if k in spec]
    if len(kinds) != 1:
        raise ScenarioError(f"{where}: give exactly one of {', '.join(_PAYLOAD_KEYS)}")
    kind = kinds[0]
    _no_unknown(spec, _PAYLOAD_KEYS[kind], where)
    payload = Payload(spec, _PAYLOAD_CHECKS[kind](spec, where))
    if not raw and kind != "random":
        # Checked on the unit, so a 16 MiB repetition is not built just to be checked.
        unit = str(spec.get(kind)).encode() if kind != "hex" else payload.at()
        if b"\n" in unit:
            raise ScenarioError(f"{where}: a message cannot contain a newline (`write` is raw)")
    return payload


def _check_text(spec: dict[str, Any], where: str) -> str:
    return repr(spec["text"])


def _check_hex(spec: dict[str, Any], where: str) -> str:
    try:
        bytes.fromhex(spec["hex"])
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"{where}: bad hex: {error}") from None
    return f"hex {spec['hex']}"


def _check_repeat(spec: dict[str, Any], where: str) -> str:
    if ("size" in spec) == ("count" in spec) or not spec["repeat"]:
        raise ScenarioError(f"{where}: repeat needs a non-empty unit and one of size, count")
    if "size" in spec:
        spec["size"] = parse_size(spec["size"], where)
        return f"{spec['repeat']!r} repeated to {_human(spec['size'])}"
    return f"{spec['repeat']!r} x {spec['count']}"


def _check_random(spec: dict[str, Any], where: str) -> str:
    spec["random"] = parse_size(spec["random"], where)
    if not isinstance(spec.get("seed"), int):
        raise ScenarioError(f"{where}: random needs an integer seed")
    if not isinstance(spec.get("printable", False), bool):
        raise ScenarioError(f"{where}: printable is true or false")
    kind = "printable ASCII" if spec.get("printable") else "bytes"
    return f"{_human(spec['random'])} of random {kind}, seed {spec['seed']}"


def _check_format(spec: dict[str, Any], where: str) -> str:
    try:
        str(spec["format"]).format(i=0, w=0)
    except (IndexError, KeyError, ValueError) as error:
        raise ScenarioError(f"{where}: format may only use {{i}} and {{w}}: {error!r}") from None
    if "size" in spec:
        spec["size"] = parse_size(spec["size"], where)
        return f"format {spec['format']!r} padded to {_human(spec['size'])}"
    return f"format {spec['format']!r}"


_PAYLOAD_KEYS: dict[str, set[str]] = {
    "text": {"text"},
    "hex": {"hex"},
    "repeat": {"repeat", "size", "count"},
    "random": {"random", "seed", "printable"},
    "format": {"format", "size"},
}
_PAYLOAD_CHECKS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "text": _check_text,
    "hex": _check_hex,
    "repeat": _check_repeat,
    "random": _check_random,
    "format": _check_format,
}


def _human(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if size >= UNITS[unit] and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]} {unit}"
    return f"{size} bytes"


def _no_unknown(table: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r} (allowed: {sorted(allowed)})")


@dataclass(frozen=True)
class Step:
    """One action of a scenario; `args` holds its modifiers, already checked."""

    action: str
    value: Any
    args: Mapping[str, Any]
    where: str
    payloads: tuple[Payload, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def role(self) -> str | None:
        role: str | None = self.args.get("role")
        return role

    def text(self) -> str:
        """The step roughly as written, for failure reports."""
        if self.action == "repeat":
            return f"repeat {self.value} times ({len(self.steps)} steps)"
        value = (
            ", ".join(p.description for p in self.payloads)
            if self.payloads and self.action != "spawn"
            else repr(self.value)
        )
        extras = "".join(
            f", {k} = {v!r}" for k, v in self.args.items() if k not in ("allow_before", "write")
        )
        return f"{self.action} {value}{extras}"


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    role: str
    timeout: float
    setup: tuple[str, ...]
    server: str
    client: str
    pipe_names: tuple[str, str]
    description: str
    steps: tuple[Step, ...] = field(repr=False)
    path: Path = field(repr=False)
    server_options: Mapping[str, int] = field(default_factory=dict)

    def applies_to(self, kind: str) -> bool:
        """kind is "client" (a client under test) or "server" (a server under test)."""
        return self.role in (kind, "both")


TOP_KEYS = {
    "title",
    "role",
    "timeout",
    "setup",
    "server",
    "client",
    "pipe_names",
    "description",
    "steps",
    "server_options",
}


def load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    return data


TOMLDecodeError = tomllib.TOMLDecodeError


def load(path: Path) -> Scenario:
    where = path.name
    try:
        data = load_toml(path)
    except TOMLDecodeError as error:
        raise ScenarioError(f"{where}: {error}") from None
    _no_unknown(data, TOP_KEYS, where)
    for key in ("title", "role", "timeout", "steps"):
        if key not in data:
            raise ScenarioError(f"{where}: missing {key!r}")
    role = data["role"]
    if role not in ROLES:
        raise ScenarioError(f"{where}: role must be one of {ROLES}")
    timeout = data["timeout"]
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ScenarioError(f"{where}: timeout must be a positive number of seconds")
    setup = tuple(data.get("setup", SETUP_ITEMS))
    if any(item not in SETUP_ITEMS for item in setup):
        raise ScenarioError(f"{where}: setup items are {SETUP_ITEMS}")
    server = data.get("server", "reference")
    if server not in ("reference", "raw"):
        raise ScenarioError(f"{where}: server must be 'reference' or 'raw'")
    if server == "raw" and role != "client":
        raise ScenarioError(f"{where}: server = 'raw' is for client-role scenarios")
    client = data.get("client", "reference")
    if client not in ("reference", "raw"):
        raise ScenarioError(f"{where}: client must be 'reference' or 'raw'")
    if client == "raw" and role == "client":
        raise ScenarioError(f"{where}: client = 'raw' is for server-role scenarios")
    names = tuple(data.get("pipe_names", ("in", "out")))
    if len(names) != 2 or not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise ScenarioError(f"{where}: pipe_names is two file names [in, out]")
    steps = _steps(data["steps"], f"{where}: steps")
    options = data.get("server_options", {})
    if not isinstance(options, dict):
        raise ScenarioError(
            f"{where}: server_options is a table such as {{ max_message_size = 1024 }}"
        )
    _no_unknown(options, set(OPTIONS), f"{where}: server_options")
    options = {
        name: parse_size(value, f"{where}: server_options.{name}")
        for name, value in options.items()
    }
    return Scenario(
        id=path.stem,
        title=data["title"],
        role=role,
        timeout=float(timeout),
        setup=setup,
        server=server,
        client=client,
        pipe_names=(names[0], names[1]),
        description=str(data.get("description", "")).strip(),
        steps=steps,
        path=path,
        server_options=options,
    )


def _steps(raw_steps: object, where: str) -> tuple[Step, ...]:
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(f"{where}: steps is a non-empty array of tables")
    return tuple(_step(item, f"{where}[{n}]") for n, item in enumerate(raw_steps))


def _step(item: object, where: str) -> Step:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: a step is a table such as {{ send = 'hello' }}")
    present = [key for key in ACTIONS if key in item]
    # `write` in a spawn step, `send` in a writers step, `writers` in an expect step are modifiers.
    actions = [a for a in present if not any(a in MODIFIERS[b] for b in present if b != a)]
    if len(actions) != 1:
        raise ScenarioError(f"{where}: a step has exactly one action of {ACTIONS}")
    action = actions[0]
    args = {k: v for k, v in item.items() if k != action}
    _no_unknown(args, MODIFIERS[action], where)
    if args.get("role", "client") not in ("client", "server"):
        raise ScenarioError(f"{where}: a step's role is 'client' or 'server'")
    if "within" in args and not (isinstance(args["within"], (int, float)) and args["within"] > 0):
        raise ScenarioError(f"{where}: within is a positive number of seconds")
    for key in ("count", "writers", "sessions"):
        if key in args and not (isinstance(args[key], int) and args[key] > 0):
            raise ScenarioError(f"{where}: {key} is a positive integer")
    if "first" in args and not (isinstance(args["first"], int) and args["first"] >= 0):
        raise ScenarioError(f"{where}: first is an index, 0 or more")
    for key in ("nonblocking", "background", "idle_sessions"):
        if key in args and not isinstance(args[key], bool):
            raise ScenarioError(f"{where}: {key} is true or false")
    step = Step(action, item[action], args, where)
    return _STEP_CHECKS.get(action, _no_check)(step)


def _no_check(step: Step) -> Step:
    return step


def _check_messages(step: Step) -> Step:
    where, args = step.where, dict(step.args)
    values = step.value if isinstance(step.value, list) else [step.value]
    payloads = tuple(_payload(v, f"{where}.{step.action}") for v in values)
    if "count" in args and len(payloads) != 1:
        raise ScenarioError(f"{where}: count goes with a single payload")
    allowed = args.get("allow_before", [])
    args["allow_before"] = tuple(
        _payload(v, f"{where}.allow_before")
        for v in (allowed if isinstance(allowed, list) else [allowed])
    )
    if "error" in args and not re.fullmatch(r"E[A-Z]+", str(args["error"])):
        raise ScenarioError(f"{where}: error is an errno name such as EPIPE")
    if "writers" in args and (len(payloads) != 1 or not payloads[0].indexed):
        raise ScenarioError(
            f"{where}: writers goes with one format payload, as in the writers step"
        )
    return replace(step, args=args, payloads=payloads)


def _check_writers(step: Step) -> Step:
    where, args = step.where, dict(step.args)
    if not isinstance(step.value, int) or isinstance(step.value, bool) or step.value < 1:
        raise ScenarioError(f"{where}: writers is a number of clients writing at once")
    if "send" not in args:
        raise ScenarioError(
            f"{where}: writers needs send = PAYLOAD (a format with {{w}} and {{i}})"
        )
    payload = _payload(args.pop("send"), f"{where}.send")
    args.setdefault("count", 1)
    if args.setdefault("sessions", 1) > args["count"]:
        raise ScenarioError(f"{where}: sessions cannot exceed count (one message at least each)")
    return replace(step, args=args, payloads=(payload,))


def _check_true(step: Step) -> Step:
    if step.value is not True:
        raise ScenarioError(f"{step.where}: write {step.action} = true")
    return step


def _check_write(step: Step) -> Step:
    return replace(step, payloads=(_payload(step.value, f"{step.where}.write", raw=True),))


def _check_spawn(step: Step) -> Step:
    where, args = step.where, dict(step.args)
    _name(step.value, where)
    if "write" not in args:
        raise ScenarioError(f"{where}: spawn needs write = PAYLOAD")
    if args.setdefault("then", "wait") not in ("wait", "exit"):
        raise ScenarioError(f"{where}: then is 'wait' (until killed) or 'exit'")
    payload = _payload(args["write"], f"{where}.write", raw=True)
    return replace(step, args=args, payloads=(payload,))


def _check_expect_exit(step: Step) -> Step:
    if not isinstance(step.value, int) or isinstance(step.value, bool):
        raise ScenarioError(f"{step.where}: expect_exit is an exit status")
    return step


def _check_pause(step: Step) -> Step:
    if not isinstance(step.value, (int, float)) or step.value < 0:
        raise ScenarioError(f"{step.where}: pause is a number of seconds")
    return step


def _check_start(step: Step) -> Step:
    if step.value not in SETUP_ITEMS:
        raise ScenarioError(f"{step.where}: start 'server' or 'client'")
    return step


def _check_restart(step: Step) -> Step:
    if step.value not in SETUP_ITEMS:
        raise ScenarioError(f"{step.where}: restart 'client' or 'server'")
    if step.args.get("signal", "TERM") not in SIGNALS:
        raise ScenarioError(f"{step.where}: signal is one of {SIGNALS}")
    return step


def _check_stop(step: Step) -> Step:
    if step.value != "server":
        raise ScenarioError(f"{step.where}: stop 'server' (a client ends with close or kill)")
    return step


def _check_kill(step: Step) -> Step:
    _name(step.value, step.where)
    args = dict(step.args)
    if args.setdefault("signal", "KILL") not in SIGNALS:
        raise ScenarioError(f"{step.where}: signal is one of {SIGNALS}")
    return replace(step, args=args)


def _check_close(step: Step) -> Step:
    if step.value not in SIDES:
        raise ScenarioError(f"{step.where}: close one of {SIDES}")
    return step


def _check_connect(step: Step) -> Step:
    _name(step.value, step.where)
    args = dict(step.args)
    order = args.setdefault("open", ["send", "recv"])
    if not (isinstance(order, list) and order and set(order) <= {"send", "recv"}):
        raise ScenarioError(f"{step.where}: open is a list of 'send' and 'recv', in order")
    if len(set(order)) != len(order):
        raise ScenarioError(f"{step.where}: open names each side once")
    return replace(step, args=args)


def _check_read_bytes(step: Step) -> Step:
    return replace(step, value=parse_size(step.value, step.where))


def _check_repeat_step(step: Step) -> Step:
    if not isinstance(step.value, int) or step.value < 1:
        raise ScenarioError(f"{step.where}: repeat is a positive count")
    args = dict(step.args)
    steps = _steps(args.pop("steps", None), f"{step.where}.steps")
    return replace(step, args=args, steps=steps)


_STEP_CHECKS: dict[str, Callable[[Step], Step]] = {
    "send": _check_messages,
    "expect": _check_messages,
    "write": _check_write,
    "spawn": _check_spawn,
    "expect_eof": _check_true,
    "writers": _check_writers,
    "create_pipes": _check_true,
    "expect_pipes_removed": _check_true,
    "expect_exit": _check_expect_exit,
    "pause": _check_pause,
    "start": _check_start,
    "stop": _check_stop,
    "restart": _check_restart,
    "kill": _check_kill,
    "close": _check_close,
    "connect": _check_connect,
    "read_bytes": _check_read_bytes,
    "repeat": _check_repeat_step,
}


def _name(value: object, where: str) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ScenarioError(f"{where}: peer names are letters, digits, - and _")


def load_all(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    scenarios = sorted(
        (load(path) for path in directory.glob("*.toml")),
        key=lambda s: (ROLES.index(s.role) if s.role != "both" else -1, s.id),
    )
    if not scenarios:
        raise ScenarioError(f"{directory}: no scenario files")
    return scenarios


def walk(steps: tuple[Step, ...]) -> Iterator[Step]:
    """Every step, nested ones included."""
    for step in steps:
        yield step
        yield from walk(step.steps)
