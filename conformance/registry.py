"""What is tested: clients.toml, servers.toml, and the expected-failure lists."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .scenario import TOMLDecodeError, load_toml

CLIENTS = "clients.toml"
SERVERS = "servers.toml"
EXPECTED = "expected-failures"
# What --update-expected writes for a new failure; a list holding it is refused until edited.
REASON_PLACEHOLDER = "REASON? (say why it fails, or fix it)"
# A reason starting so marks a failure that depends on timing: passing is then no surprise.
INTERMITTENT = "sometimes:"


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
    needs: tuple[str, ...] = ()
    install: str | None = None

    @property
    def label(self) -> str:
        return self.name if self.kind == "client" else f"server:{self.name}"

    @property
    def expected_failures_name(self) -> str:
        return f"{self.name}.txt" if self.kind == "client" else f"server-{self.name}.txt"

    def missing(self, path: str) -> list[str]:
        """The commands of `needs` not found on PATH (a name with a slash: not executable)."""
        return [
            need
            for need in self.needs
            if not (os.access(need, os.X_OK) if "/" in need else shutil.which(need, path=path))
        ]


def registry_dir(start: Path) -> Path:
    """Where clients.toml and servers.toml are: the folder itself, or its conformance/."""
    for folder in (start, start / "conformance"):
        if (folder / CLIENTS).exists() or (folder / SERVERS).exists():
            return folder
    return start


def _read(path: Path) -> dict[str, object]:
    try:
        return load_toml(path)
    except FileNotFoundError:
        raise RegistryError(f"{path}: no such file") from None
    except TOMLDecodeError as error:
        raise RegistryError(f"{path.name}: {error}") from None


def _load(path: Path, kind: str) -> list[Testee]:
    placeholders = "{recv} {send}" if kind == "client" else "{in} {out}"
    keys = {"run", "build", "needs", "install"} | ({"stop_signal"} if kind == "server" else set())
    testees = []
    for name, table in _read(path).items():
        where = f"{path.name}: [{name}]"
        if not isinstance(table, dict) or not isinstance(table.get("run"), str):
            raise RegistryError(f'{where} needs run = "...{placeholders}"')
        unknown = set(table) - keys
        if unknown:
            raise RegistryError(f"{where} unknown key {sorted(unknown)[0]!r}")
        needs = table.get("needs", [])
        if not (isinstance(needs, list) and all(isinstance(n, str) and n for n in needs)):
            raise RegistryError(f'{where} needs is a list of commands, e.g. ["go"]')
        install = table.get("install")
        if install is not None and not isinstance(install, str):
            raise RegistryError(f"{where} install is the command that installs what it needs")
        signal = table.get("stop_signal", "TERM")
        if signal not in ("TERM", "INT"):
            raise RegistryError(f"{where} stop_signal is TERM or INT")
        testees.append(
            Testee(name, kind, table["run"], table.get("build"), signal, tuple(needs), install)
        )
    return testees


def load_clients(path: Path) -> list[Testee]:
    return _load(path, "client")


def load_servers(path: Path) -> list[Testee]:
    return _load(path, "server")


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
    testee: Testee, scenario_ids: set[str], directory: Path
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
            raise RegistryError(f"{path}:{number}: no scenario named {scenario_id!r}")
        reason = reason.strip()
        if not reason:
            raise RegistryError(f"{path}:{number}: give the reason after the scenario id")
        if reason == REASON_PLACEHOLDER:
            raise RegistryError(
                f"{path}:{number}: {scenario_id}: replace {REASON_PLACEHOLDER!r} with the reason"
            )
        expected[scenario_id] = reason
    return expected


def update_expected_failures(
    testee: Testee, failed: list[str], passed: list[str], directory: Path
) -> tuple[list[str], list[str]]:
    """Add the scenarios that failed unlisted, remove the listed ones that passed.

    Comments and the other lines stay as they are. Returns (added, removed).
    """
    path = directory / testee.expected_failures_name
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.strip().partition(" ")[0] not in passed]
    removed = [line.split()[0] for line in lines if line.strip() and line not in kept]
    listed = {line.strip().partition(" ")[0] for line in kept}
    added = [scenario for scenario in failed if scenario not in listed]
    if not added and not removed:
        return [], []
    if not lines:
        kept.append(f"# Scenarios {testee.label} is known to fail, one per line: ID REASON.")
    kept += [f"{scenario} {REASON_PLACEHOLDER}" for scenario in added]
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return added, removed
