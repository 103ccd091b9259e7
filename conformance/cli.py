"""python -m conformance (or `pipe-io-server conformance`): play the scenarios against the
clients and servers, print the matrix, write the reports."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

from . import report
from .registry import (
    CLIENTS,
    EXPECTED,
    SERVERS,
    RegistryError,
    Testee,
    load_clients,
    load_expected_failures,
    load_servers,
    parse_testee,
    registry_dir,
    update_expected_failures,
)
from .runner import Run, in_ci, run_matrix
from .scenario import SCENARIO_DIR, Scenario, ScenarioError, load_all

DEFAULT_REPORTS = Path("conformance-reports")


class _ClientAction(argparse.Action):
    """--client NAME=CMD, optionally followed by --build CMD for that client."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        namespace.client.append([values, None])


class _BuildAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        if not namespace.client:
            parser.error("--build goes after the --client it builds")
        namespace.client[-1][1] = values


def parser(prog: str = "python -m conformance") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Play every scenario against every client (with the reference server) and "
        "every server (with the reference client); print a matrix; write JSON, JUnit and HTML "
        "reports. Commands run from the current directory, where clients.toml and servers.toml "
        "are looked for (or in its conformance/ folder).",
        epilog="Exit status 0 only when nothing failed unexpectedly and nothing passed "
        "unexpectedly (under CI=true, a skipped testee fails too); 2 for a mistake in the "
        "command line or a file. See conformance/README.md and docs/PORTING.md.",
    )
    p.set_defaults(client=[])
    p.add_argument(
        "--client",
        action=_ClientAction,
        metavar="NAME=CMD",
        help="test this client instead of the registries; CMD runs its echo example "
        "with {recv} (the pipe it reads) and {send} (the pipe it writes); repeatable",
    )
    p.add_argument(
        "--build",
        action=_BuildAction,
        metavar="CMD",
        help="build command for the --client just before it (run once, from the current directory)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="[NAME=]CMD",
        help="test this server instead of the registries; CMD serves an echo on {in} and "
        "{out}, creating the FIFOs, and stops on SIGTERM; options reach it through "
        "placeholders such as {max_message_size}; repeatable",
    )
    p.add_argument(
        "--clients",
        type=Path,
        metavar="FILE",
        help=f"the clients registry (default ./{CLIENTS} or ./conformance/{CLIENTS})",
    )
    p.add_argument(
        "--servers",
        type=Path,
        metavar="FILE",
        help=f"the servers registry (default ./{SERVERS} or ./conformance/{SERVERS})",
    )
    p.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated clients or servers to test (e.g. bash,c or reference)",
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="PATTERN",
        help="play only scenarios whose id matches this shell pattern (e.g. 'echo-*'); repeatable",
    )
    p.add_argument("--jobs", "-j", type=int, default=2, help="cells played at once (default 2)")
    p.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every timeout and time limit (slow machines)",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=DEFAULT_REPORTS,
        metavar="DIR",
        help=f"where report.json, junit.xml and report.html go (default ./{DEFAULT_REPORTS})",
    )
    p.add_argument(
        "--expected-failures",
        type=Path,
        metavar="DIR",
        help=f"where the lists NAME.txt of expected failures are (default {EXPECTED}/ beside "
        "the registries; server lists are server-NAME.txt)",
    )
    p.add_argument(
        "--update-expected",
        action="store_true",
        help="after the run, add unexpected failures to the lists (with a reason to fill in) "
        "and remove the entries that passed",
    )
    p.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="write the scenario files into DIR (for another runner) and play nothing",
    )
    p.add_argument("--scenarios-dir", type=Path, default=SCENARIO_DIR, help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help="list scenarios and testees, play nothing")
    return p


def registries(args: argparse.Namespace) -> list[Testee]:
    """The testees of --clients/--servers, or of the registry files found here."""
    if args.clients or args.servers:
        found = [(args.clients, load_clients), (args.servers, load_servers)]
        return [t for path, load in found if path is not None for t in load(path)]
    folder = registry_dir(Path.cwd())
    files = [(folder / CLIENTS, load_clients), (folder / SERVERS, load_servers)]
    if not any(path.exists() for path, _ in files):
        raise RegistryError(
            f"no {CLIENTS} or {SERVERS} here or in conformance/: give --server CMD or "
            "--client NAME=CMD (or --clients/--servers FILE)"
        )
    return [t for path, load in files if path.exists() for t in load(path)]


def select_testees(args: argparse.Namespace) -> list[Testee]:
    if args.client or args.server:
        testees = [parse_testee(cmd, "client", build) for cmd, build in args.client]
        testees += [parse_testee(cmd, "server") for cmd in args.server]
    else:
        testees = registries(args)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {t.name for t in testees} - {t.label for t in testees}
        if unknown:
            raise RegistryError(f"--only: no client or server named {', '.join(sorted(unknown))}")
        testees = [t for t in testees if t.name in wanted or t.label in wanted]
    labels = [t.label for t in testees]
    if len(set(labels)) != len(labels):
        raise RegistryError(f"two testees with the same name: {labels}")
    return testees


def select_scenarios(args: argparse.Namespace, testees: list[Testee]) -> list[Scenario]:
    scenarios = load_all(args.scenarios_dir)
    if args.scenario:
        patterns = [p for arg in args.scenario for p in arg.split(",")]
        scenarios = [s for s in scenarios if any(fnmatch.fnmatch(s.id, p) for p in patterns)]
    kinds = {t.kind for t in testees}
    return [s for s in scenarios if any(s.applies_to(kind) for kind in kinds)]


def expected_dir(args: argparse.Namespace) -> Path:
    if args.expected_failures is not None:
        return Path(args.expected_failures)
    registry = args.clients or args.servers
    folder = registry.parent if registry is not None else registry_dir(Path.cwd())
    return folder / EXPECTED


def export(directory: Path, source: Path) -> int:
    """Copy the scenario files; a different file already there is an error, not overwritten."""
    files = sorted(source.glob("*.toml"))
    clashes = [
        directory / f.name
        for f in files
        if (directory / f.name).exists() and (directory / f.name).read_bytes() != f.read_bytes()
    ]
    if clashes:
        print(
            f"conformance: error: {clashes[0]} exists and differs: nothing was written "
            "(remove it or choose another folder)",
            file=sys.stderr,
        )
        return 2
    directory.mkdir(parents=True, exist_ok=True)
    for file in files:
        (directory / file.name).write_bytes(file.read_bytes())
    print(f"{len(files)} scenario files written to {directory}")
    return 0


def update(run: Run, directory: Path) -> None:
    for testee in run.testees:
        cells = [c for c in run.cells if c.testee is testee]
        failed = [c.scenario.id for c in cells if c.outcome == "fail"]
        passed = [c.scenario.id for c in cells if c.outcome == "xpass"]
        added, removed = update_expected_failures(testee, failed, passed, directory)
        path = directory / testee.expected_failures_name
        if added:
            print(
                f"{path}: added {', '.join(added)}: write the reason on each line", file=sys.stderr
            )
        if removed:
            print(f"{path}: removed {', '.join(removed)} (they pass now)", file=sys.stderr)


def main(argv: list[str] | None = None, prog: str = "python -m conformance") -> int:
    args = parser(prog).parse_args(argv)
    if args.export is not None:
        return export(args.export, args.scenarios_dir)
    expected_failures = expected_dir(args)
    try:
        testees = select_testees(args)
        scenarios = select_scenarios(args, testees)
        ids = {s.id for s in load_all(args.scenarios_dir)}
        expected = {t.label: load_expected_failures(t, ids, expected_failures) for t in testees}
    except (RegistryError, ScenarioError) as error:
        print(f"conformance: error: {error}", file=sys.stderr)
        return 2
    if args.list:
        for scenario in scenarios:
            print(f"{scenario.id:36} {scenario.role:6} {scenario.timeout:5g} s  {scenario.title}")
        for testee in testees:
            print(f"{testee.label}: {testee.run}")
        return 0
    if not testees or not scenarios:
        print("conformance: error: nothing to play (check --only and --scenario)", file=sys.stderr)
        return 2
    run = run_matrix(
        testees,
        scenarios,
        lambda t: expected[t.label],
        jobs=args.jobs,
        scale=args.timeout_scale,
    )
    out = sys.stdout
    report.matrix(run, out)
    report.details(run, out)
    paths = report.write_files(run, args.reports, ci=in_ci())
    print(f"\nreports: {' '.join(map(str, paths))}", file=out)
    status = report.summary(run, out, ci=in_ci())
    if args.update_expected:
        update(run, expected_failures)
    return status
