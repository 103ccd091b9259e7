"""The matrix, the closing lines and the report files, from a made-up run."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance import report
from conformance.engine import Result
from conformance.registry import Testee
from conformance.runner import Cell, Run
from conformance.scenario import load_all


def made_up_run() -> Run:
    scenarios = [s for s in load_all() if s.id in ("echo-cr", "echo-nul", "server-stop-idle")]
    client = Testee("bash", "client", "bash echo.sh {recv} {send}")
    server = Testee("reference", "server", "pipe-io-server serve {in} {out}")
    by_id = {s.id: s for s in scenarios}
    cells = [
        Cell(client, by_id["echo-cr"], None, Result(True, 0.25)),
        Cell(client, by_id["echo-nul"], "no NUL in bash", Result(False, 0.5, "differs")),
        Cell(server, by_id["echo-cr"], None, Result(False, 1.5, "bad \x1b[31m\x00", ["d\x00"])),
        Cell(server, by_id["echo-nul"], "listed", Result(True, 0.1)),
        Cell(server, by_id["server-stop-idle"], None, Result(True, 12.5)),
    ]
    return Run([client, server], scenarios, cells, {}, 3.0)


def test_matrix_rows_columns_and_cells() -> None:
    out = io.StringIO()
    report.matrix(made_up_run(), out, width=100)
    text = out.getvalue()
    assert "1  echo-cr" in text and "3  server-stop-idle" in text
    rows = {
        line.split()[0]: line.split()[1:]
        for line in text.splitlines()
        if line[:4] in ("bash", "serv")
    }
    assert rows["bash"] == ["0.25s", "xfail", "-"]
    assert rows["server:reference"] == ["FAIL", "XPASS", "12.5s"]


def test_closing_lines_and_exit_status() -> None:
    out = io.StringIO()
    status = report.summary(made_up_run(), out)
    lines = out.getvalue().strip().splitlines()
    assert lines[-3:] == [
        "unexpected passes: 1 (counted as failed)",
        "xfail: 1",
        "2 passed, 2 failed",
    ]
    assert status == 1


def test_json_and_junit_files(tmp_path: Path) -> None:
    json_path, junit_path = report.write_files(made_up_run(), tmp_path)
    data = json.loads(json_path.read_text())
    assert data["summary"] == {"passed": 2, "failed": 2, "xfail": 1, "xpass": 1}
    assert {r["outcome"] for r in data["results"]} == {"pass", "fail", "xfail", "xpass"}
    root = ET.parse(junit_path).getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert suites["bash"].get("skipped") == "1" and suites["bash"].get("failures") == "0"
    assert suites["server:reference"].get("failures") == "2"
    failure = root.find(
        ".//testcase[@name='echo-cr'][@classname='conformance.server:reference']/failure"
    )
    assert failure is not None and "\\x00" in (failure.text or "")
