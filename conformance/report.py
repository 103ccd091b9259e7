"""The matrix on stdout, the JSON report and the JUnit XML file."""

from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, TextIO

from .runner import Cell, Run

CELL = 6
LEGEND = (
    "cells: seconds = passed, FAIL = failed, xfail = expected failure (listed), "
    "XPASS = passed though listed as failing, - = not applicable"
)


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
    return {"fail": "FAIL", "xfail": "xfail", "xpass": "XPASS"}[outcome]


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


def summary(run: Run, out: TextIO) -> int:
    """The closing lines; returns the exit status (0 only without surprises)."""
    passed = run.count("pass")
    failed = run.count("fail") + run.count("xpass")
    print(f"\nmatrix played in {run.seconds:.1f} s", file=out)
    xpass = run.count("xpass")
    if xpass:
        print(f"unexpected passes: {xpass} (counted as failed)", file=out)
    print(f"xfail: {run.count('xfail')}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return 0 if failed == 0 else 1


def to_json(run: Run) -> dict[str, Any]:
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
                "file": f"conformance/scenarios/{s.path.name}",
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
            }
            for c in run.cells
            if c.result is not None
        ],
        "summary": {
            "passed": run.count("pass"),
            "failed": run.count("fail") + run.count("xpass"),
            "xfail": run.count("xfail"),
            "xpass": run.count("xpass"),
        },
    }


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Client output may hold bytes XML 1.0 cannot carry (escape sequences, NUL)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def to_junit(run: Run) -> ET.ElementTree:
    suites = ET.Element("testsuites", name="pipe-io-server conformance", time=f"{run.seconds:.3f}")
    for testee in run.testees:
        cells = [c for c in run.cells if c.testee is testee]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=testee.label,
            tests=str(len(cells)),
            failures=str(sum(c.outcome in ("fail", "xpass") for c in cells)),
            skipped=str(sum(c.outcome == "xfail" for c in cells)),
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
            if cell.outcome == "fail":
                failure = ET.SubElement(case, "failure", message=_xml(cell.result.message))
                failure.text = _xml("\n".join(cell.result.details))
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


def write_files(run: Run, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "report.json"
    junit_path = directory / "junit.xml"
    json_path.write_text(json.dumps(to_json(run), indent=2) + "\n", encoding="utf-8")
    to_junit(run).write(junit_path, encoding="utf-8", xml_declaration=True)
    return json_path, junit_path
