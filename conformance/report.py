"""The matrix on stdout, the JSON report, the JUnit XML file and the HTML page."""

from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, TextIO

from . import htmlpage
from .runner import Cell, Run

CELL = 6
LEGEND = (
    "cells: seconds = passed, FAIL = failed, xfail = expected failure (listed), "
    "XPASS = passed though listed as failing, skip = not played (a command it needs is "
    "missing), unsup = the server's command cannot take an option the scenario sets, "
    "- = not applicable"
)
TEXT = {
    "fail": "FAIL",
    "xfail": "xfail",
    "xpass": "XPASS",
    "skipped": "skip",
    "unsupported": "unsup",
}


def column_ids(run: Run) -> dict[str, str]:
    width = len(str(len(run.scenarios)))
    return {s.id: f"{n:0{width}}" for n, s in enumerate(run.scenarios, 1)}


def cell_text(cell: Cell | None) -> str:
    if cell is None or cell.result is None:
        return "-"
    outcome = cell.outcome
    if outcome == "pass":
        seconds = cell.result.seconds
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    return TEXT[outcome]


def matrix(run: Run, out: TextIO, width: int | None = None) -> None:
    ids = column_ids(run)
    print("Scenarios (columns):", file=out)
    for scenario in run.scenarios:
        print(
            f"  {ids[scenario.id]}  {scenario.id:36} {scenario.role:6}  {scenario.title}", file=out
        )
    print(file=out)
    by_key = {(c.testee.label, c.scenario.id): c for c in run.cells}
    rows = [t.label for t in run.testees]
    name_width = max(len(r) for r in [*rows, "scenario"]) + 2
    width = width or max(80, min(shutil.get_terminal_size((120, 24)).columns, 160))
    per_block = max(1, (width - name_width) // (CELL + 1))
    scenarios = run.scenarios
    for start in range(0, len(scenarios), per_block):
        block = scenarios[start : start + per_block]
        header = "".join(f" {ids[s.id]:>{CELL}}" for s in block)
        print(f"{'scenario':<{name_width}}{header}", file=out)
        for row in rows:
            cells = "".join(f" {cell_text(by_key.get((row, s.id))):>{CELL}}" for s in block)
            print(f"{row:<{name_width}}{cells}", file=out)
        print(file=out)
    print(LEGEND, file=out)


def details(run: Run, out: TextIO) -> None:
    ids = column_ids(run)
    for cell in run.cells:
        assert cell.result is not None
        outcome = cell.outcome
        if outcome == "fail":
            print(
                f"\nFAIL {cell.testee.label} / {cell.scenario.id} (column {ids[cell.scenario.id]}, "
                f"{cell.result.seconds:.2f} s): {cell.result.message}",
                file=out,
            )
            for line in cell.result.details:
                print(f"    {line}", file=out)
        elif outcome == "xpass":
            print(
                f"\nXPASS {cell.testee.label} / {cell.scenario.id}: passed, but "
                f"{cell.testee.expected_failures_name} lists it ({cell.expected_failure}); "
                "remove the line",
                file=out,
            )
    for testee in run.testees:
        if testee.label in run.missing:
            how = f"; install with: {testee.install}" if testee.install else ""
            print(
                f"\nSKIPPED {testee.label}: needs {', '.join(run.missing[testee.label])}{how}",
                file=out,
            )
    unsupported = [c for c in run.cells if c.outcome == "unsupported"]
    if unsupported:
        print("\nunsupported options (not played):", file=out)
        for cell in unsupported:
            assert cell.result is not None
            print(f"  {cell.name}: {cell.result.message}", file=out)
    xfails = [c for c in run.cells if c.outcome == "xfail"]
    if xfails:
        print("\nexpected failures:", file=out)
        for cell in xfails:
            assert cell.result is not None
            print(
                f"  {cell.testee.label} / {cell.scenario.id}: {cell.expected_failure} "
                f"(it failed with: {cell.result.message})",
                file=out,
            )


def failed_count(run: Run, ci: bool) -> int:
    return run.count("fail") + run.count("xpass") + (run.count("skipped") if ci else 0)


def summary(run: Run, out: TextIO, ci: bool = False) -> int:
    """The closing lines; returns the exit status (0 only without surprises)."""
    passed = run.count("pass")
    failed = failed_count(run, ci)
    print(f"\nmatrix played in {run.seconds:.1f} s", file=out)
    xpass = run.count("xpass")
    if xpass:
        print(f"unexpected passes: {xpass} (counted as failed)", file=out)
    skipped = run.count("skipped")
    if skipped:
        verdict = "counted as failed under CI=true" if ci else "not played"
        print(f"skipped: {skipped} ({verdict})", file=out)
    if run.count("unsupported"):
        print(f"unsupported option: {run.count('unsupported')} (not played)", file=out)
    print(f"xfail: {run.count('xfail')}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return 0 if failed == 0 else 1


def to_json(run: Run, ci: bool = False) -> dict[str, Any]:
    ids = column_ids(run)
    return {
        "format": "pipe-io-server conformance report 1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(run.seconds, 3),
        "testees": [
            {
                "name": t.name,
                "label": t.label,
                "kind": t.kind,
                "run": t.run,
                "build": t.build,
                "build_seconds": round(run.builds[t.label].seconds, 3)
                if t.label in run.builds
                else None,
                "missing": run.missing.get(t.label, []),
                "install": t.install,
            }
            for t in run.testees
        ],
        "scenarios": [
            {
                "id": s.id,
                "column": ids[s.id],
                "title": s.title,
                "role": s.role,
                "timeout": s.timeout,
                "file": f"scenarios/{s.path.name}",
                "description": s.description,
            }
            for s in run.scenarios
        ],
        "results": [
            {
                "testee": c.testee.label,
                "scenario": c.scenario.id,
                "outcome": c.outcome,
                "seconds": round(c.result.seconds, 3),
                "message": c.result.message,
                "details": c.result.details,
                "expected_failure": c.expected_failure,
                "steps": c.result.steps,
                "processes": c.result.processes,
            }
            for c in run.cells
            if c.result is not None
        ],
        "summary": {
            "passed": run.count("pass"),
            "failed": failed_count(run, ci),
            "xfail": run.count("xfail"),
            "xpass": run.count("xpass"),
            "skipped": run.count("skipped"),
            "unsupported": run.count("unsupported"),
        },
    }


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Client output may hold bytes XML 1.0 cannot carry (escape sequences, NUL)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def to_junit(run: Run, ci: bool = False) -> ET.ElementTree:
    failing = ("fail", "xpass", "skipped") if ci else ("fail", "xpass")
    suites = ET.Element("testsuites", name="pipe-io-server conformance", time=f"{run.seconds:.3f}")
    for testee in run.testees:
        cells = [c for c in run.cells if c.testee is testee]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=testee.label,
            tests=str(len(cells)),
            failures=str(sum(c.outcome in failing for c in cells)),
            skipped=str(
                sum(c.outcome in ("xfail", "skipped", "unsupported") for c in cells)
                - sum(c.outcome == "skipped" for c in cells if ci)
            ),
            time=f"{sum(c.result.seconds for c in cells if c.result):.3f}",
        )
        for cell in cells:
            assert cell.result is not None
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{testee.label}",
                name=cell.scenario.id,
                time=f"{cell.result.seconds:.3f}",
            )
            if cell.outcome == "fail" or (cell.outcome == "skipped" and ci):
                failure = ET.SubElement(case, "failure", message=_xml(cell.result.message))
                failure.text = _xml("\n".join(cell.result.details))
            elif cell.outcome in ("skipped", "unsupported"):
                ET.SubElement(case, "skipped", message=_xml(cell.result.message))
            elif cell.outcome == "xpass":
                ET.SubElement(
                    case,
                    "failure",
                    message=_xml(f"unexpected pass: listed as {cell.expected_failure}"),
                )
            elif cell.outcome == "xfail":
                ET.SubElement(
                    case, "skipped", message=_xml(f"expected failure: {cell.expected_failure}")
                )
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    return tree


def write_files(run: Run, directory: Path, ci: bool = False) -> tuple[Path, Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "report.json"
    junit_path = directory / "junit.xml"
    html_path = directory / "report.html"
    data = to_json(run, ci)
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    to_junit(run, ci).write(junit_path, encoding="utf-8", xml_declaration=True)
    html_path.write_text(htmlpage.page(data), encoding="utf-8")
    return json_path, junit_path, html_path
