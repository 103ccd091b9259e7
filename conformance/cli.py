"""python -m conformance: play the scenarios against the clients and servers, print the matrix."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

from . import report
from .registry import (
    EXPECTED,
    RegistryError,
    Testee,
    load_clients,
    load_expected_failures,
    load_servers,
    parse_testee,
)
from .runner import run_matrix
from .scenario import SCENARIO_DIR, Scenario, ScenarioError, load_all

DEFAULT_REPORTS = Path(__file__).parent / "reports"


class _ClientAction(argparse.Action):
    """--client NAME=CMD, optionally followed by --build CMD for that client."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        namespace.clients.append([values, None])


class _BuildAction(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        if not namespace.clients:
            parser.error("--build goes after the --client it builds")
        namespace.clients[-1][1] = values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Play every scenario against every client (with the reference server) and "
        "every server (with the reference client); print a matrix; write JSON and JUnit reports.",
        epilog="Exit status 0 only when nothing failed unexpectedly and nothing passed "
        "unexpectedly. See conformance/README.md.",
    )
    p.set_defaults(clients=[])
    p.add_argument(
        "--client",
        action=_ClientAction,
        metavar="NAME=CMD",
        help="test this client instead of conformance/clients.toml; CMD runs its echo example "
        "with {recv} (the pipe it reads) and {send} (the pipe it writes); repeatable",
    )
    p.add_argument(
        "--build",
        action=_BuildAction,
        metavar="CMD",
        help="build command for the --client just before it (run once, from the repository root)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="[NAME=]CMD",
        help="test this server instead of conformance/servers.toml; CMD serves an echo on "
        "{in} and {out}, creating the FIFOs, and stops on SIGTERM; repeatable",
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
        help="where report.json and junit.xml go (default conformance/reports)",
    )
    p.add_argument(
        "--expected-failures",
        type=Path,
        default=EXPECTED,
        metavar="DIR",
        help="where the lists NAME.txt of expected failures are (default "
        "conformance/expected-failures; server lists are server-NAME.txt)",
    )
    p.add_argument("--scenarios-dir", type=Path, default=SCENARIO_DIR, help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help="list scenarios and testees, play nothing")
    return p


def select_testees(args: argparse.Namespace) -> list[Testee]:
    if args.clients or args.server:
        testees = [parse_testee(cmd, "client", build) for cmd, build in args.clients]
        testees += [parse_testee(cmd, "server") for cmd in args.server]
    else:
        testees = load_clients() + load_servers()
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        testees = select_testees(args)
        scenarios = select_scenarios(args, testees)
        ids = {s.id for s in load_all(args.scenarios_dir)}
        expected = {
            t.label: load_expected_failures(t, ids, args.expected_failures) for t in testees
        }
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
    json_path, junit_path = report.write_files(run, args.reports)
    print(f"\nreports: {json_path} {junit_path}", file=out)
    return report.summary(run, out)
