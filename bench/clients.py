"""The clients' echo examples, built as conformance/clients.toml says, and two references.

The load client plays the server's side of the two FIFOs, so a client's figures are its
own: `cat` (a byte echo that parses nothing) shows what the load client and the pipes can
do, and the C echo (bench/cecho.c) what a client must do at least per message.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package (a dependency of pipe-io-server before 3.11)
    import tomli as tomllib

from .cases import BUILD, ROOT
from .processes import Echo

REGISTRY = ROOT / "conformance" / "clients.toml"
REFERENCES = {
    "cat": ("cat (no framing)", "cat < {recv} > {send}"),
    "cecho": ("C echo (bench/cecho.c)", f"{shlex.quote(str(BUILD / 'cecho'))} {{recv}} {{send}}"),
}
# The clients in languages compiled ahead of time: held to half the C echo's pipelined rate.
COMPILED = {"c", "cpp", "rust", "go"}


def _command(run: str) -> Callable[[str, str], list[str]]:
    """The argv of a registry `run` line, as the conformance runner starts it."""

    def argv(to_echo: str, from_echo: str) -> list[str]:
        line = run.format(recv=shlex.quote(to_echo), send=shlex.quote(from_echo))
        return ["/bin/sh", "-c", "exec " + line]

    return argv


def _echo(name: str, label: str, run: str) -> Echo:
    return Echo(name, label, _command(run), kind="client")


def _environment() -> None:
    """The runner's Python first on PATH, as conformance runs the clients (python3 ...)."""
    venv_bin = str(os.path.dirname(sys.executable))
    path = os.environ.get("PATH", "")
    if not path.startswith(venv_bin + os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + path


def _skip_reason(name: str, entry: dict[str, Any]) -> str:
    """Why a client cannot run here, or "" if it can."""
    needs = entry.get("needs", [])
    missing_tools = [tool for tool in needs if shutil.which(tool) is None]
    if missing_tools:
        install = entry.get("install")
        return f"needs {', '.join(missing_tools)}" + (f" (install: {install})" if install else "")
    words = shlex.split(entry["run"]) + shlex.split(entry.get("build", ""))
    missing = [w for w in words if w.startswith("clients/") and not glob.glob(str(ROOT / w))]
    if missing or not (ROOT / "clients" / name).is_dir():
        return "missing " + ", ".join(missing or [f"clients/{name}"])
    if "build" not in entry:
        return ""
    done = subprocess.run(
        ["/bin/sh", "-c", entry["build"]],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
        return f"build failed with status {done.returncode}" + "".join(f": {t}" for t in last)
    return ""


def prepare_clients() -> tuple[list[Echo], dict[str, str]]:
    """The references, then every client of the registry that builds and whose tools are here.

    Returns (echoes, skipped: name -> why), both in the registry's order.
    """
    _environment()
    with open(REGISTRY, "rb") as table:
        registry: dict[str, dict[str, Any]] = tomllib.load(table)
    echoes = [_echo(name, label, run) for name, (label, run) in REFERENCES.items()]
    skipped: dict[str, str] = {}
    for name, entry in registry.items():
        why = _skip_reason(name, entry)
        if why:
            skipped[name] = why
        else:
            echoes.append(_echo(name, name, entry["run"]))
    return echoes, skipped
