"""What is tested: clients.toml, servers.toml, and the expected-failure lists."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
CLIENTS = HERE / "clients.toml"
SERVERS = HERE / "servers.toml"
EXPECTED = HERE / "expected-failures"


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class Testee:
    """One row of the matrix: a client (run with {recv} {send}) or a server ({in} {out})."""

    __test__ = False  # not a pytest class, despite the name

    name: str
    kind: str  # "client" or "server"
    run: str
    build: str | None = None
    stop_signal: str = "TERM"

    @property
    def label(self) -> str:
        return self.name if self.kind == "client" else f"server:{self.name}"

    @property
    def expected_failures_name(self) -> str:
        return f"{self.name}.txt" if self.kind == "client" else f"server-{self.name}.txt"


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{path.name}: {error}") from None


def load_clients(path: Path = CLIENTS) -> list[Testee]:
    testees = []
    for name, table in _read(path).items():
        if not isinstance(table, dict) or not isinstance(table.get("run"), str):
            raise RegistryError(f'{path.name}: [{name}] needs run = "...{{recv}} {{send}}"')
        unknown = set(table) - {"run", "build"}
        if unknown:
            raise RegistryError(f"{path.name}: [{name}] unknown key {sorted(unknown)[0]!r}")
        testees.append(Testee(name, "client", table["run"], table.get("build")))
    return testees


def load_servers(path: Path = SERVERS) -> list[Testee]:
    testees = []
    for name, table in _read(path).items():
        if not isinstance(table, dict) or not isinstance(table.get("run"), str):
            raise RegistryError(f'{path.name}: [{name}] needs run = "...{{in}} {{out}}"')
        unknown = set(table) - {"run", "build", "stop_signal"}
        if unknown:
            raise RegistryError(f"{path.name}: [{name}] unknown key {sorted(unknown)[0]!r}")
        signal = table.get("stop_signal", "TERM")
        if signal not in ("TERM", "INT"):
            raise RegistryError(f"{path.name}: [{name}] stop_signal is TERM or INT")
        testees.append(Testee(name, "server", table["run"], table.get("build"), signal))
    return testees


def parse_testee(text: str, kind: str, build: str | None = None) -> Testee:
    """`NAME=CMD` or just `CMD` (named "cli") from the command line."""
    match = re.match(r"([A-Za-z0-9_.-]+)=(.*)", text, re.DOTALL)
    name, command = (match.group(1), match.group(2)) if match else ("cli", text)
    placeholders = ("{recv}", "{send}") if kind == "client" else ("{in}", "{out}")
    if not all(p in command for p in placeholders):
        raise RegistryError(
            f"the {kind} command must contain {placeholders[0]} and {placeholders[1]}: {command!r}"
        )
    return Testee(name, kind, command, build)


def load_expected_failures(
    testee: Testee, scenario_ids: set[str], directory: Path = EXPECTED
) -> dict[str, str]:
    """scenario id -> reason, from lines `scenario-id  reason`; # starts a comment."""
    path = directory / testee.expected_failures_name
    if not path.exists():
        return {}
    expected: dict[str, str] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        scenario_id, _, reason = line.partition(" ")
        if scenario_id not in scenario_ids:
            raise RegistryError(f"{path.name}:{number}: no scenario named {scenario_id!r}")
        if not reason.strip():
            raise RegistryError(f"{path.name}:{number}: give the reason after the scenario id")
        expected[scenario_id] = reason.strip()
    return expected
