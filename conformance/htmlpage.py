"""report.html: the matrix and every cell's story in one self-contained page (no network)."""

from __future__ import annotations

from html import escape
from typing import Any

COLOURS = {
    "pass": "#cdeccd",
    "fail": "#f4b4b4",
    "xfail": "#f6dfa4",
    "xpass": "#d9c2f0",
    "skipped": "#dddddd",
    "unsupported": "#c9dcf0",
}
NAMES = {
    "pass": "passed",
    "fail": "FAILED",
    "xfail": "expected failure",
    "xpass": "passed, but listed as failing",
    "skipped": "skipped: a command it needs is missing",
    "unsupported": "unsupported server option",
}
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
.scroll { overflow-x: auto; }
table.matrix { border-collapse: collapse; margin: 1em 0; }
.matrix th, .matrix td { border: 1px solid #bbb; padding: 2px 5px; text-align: center;
  font: 12px monospace; white-space: nowrap; }
.matrix th.row { text-align: left; }
.matrix a { color: inherit; text-decoration: none; display: block; }
.legend span { display: inline-block; padding: 1px 8px; margin: 0 4px 4px 0;
  border: 1px solid #bbb; }
details { border: 1px solid #ccc; margin: 4px 0; padding: 2px 8px; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f6f6; padding: 6px; overflow-x: auto; white-space: pre-wrap;
  font-size: 12px; margin: 4px 0; }
ol.scenarios { columns: 2; font-size: 12px; }
.dim { color: #666; }
"""


def _cell_text(result: dict[str, Any]) -> str:
    if result["outcome"] == "pass":
        return f"{result['seconds']:.2f}s"
    names = {"fail": "FAIL", "xfail": "xfail", "xpass": "XPASS", "skipped": "skip"}
    return f"{names.get(result['outcome'], 'unsup')} {result['seconds']:.1f}s"


def _matrix(data: dict[str, Any], anchors: dict[tuple[str, str], str]) -> list[str]:
    by_key = {(r["testee"], r["scenario"]): r for r in data["results"]}
    head = "".join(
        f'<th title="{escape(s["id"])}: {escape(s["title"])}">{escape(s["column"])}</th>'
        for s in data["scenarios"]
    )
    rows = [
        '<div class="scroll"><table class="matrix">',
        f'<tr><th class="row">testee \\ scenario</th>{head}</tr>',
    ]
    for testee in data["testees"]:
        cells = []
        for scenario in data["scenarios"]:
            result = by_key.get((testee["label"], scenario["id"]))
            if result is None:
                cells.append('<td class="dim">-</td>')
                continue
            colour = COLOURS[result["outcome"]]
            tip = f"{scenario['id']}: {NAMES[result['outcome']]}"
            anchor = anchors[(testee["label"], scenario["id"])]
            cells.append(
                f'<td style="background:{colour}" title="{escape(tip)}">'
                f'<a href="#{anchor}">{escape(_cell_text(result))}</a></td>'
            )
        rows.append(f'<tr><th class="row">{escape(testee["label"])}</th>{"".join(cells)}</tr>')
    rows.append("</table></div>")
    return rows


def _cell(result: dict[str, Any], anchor: str, scenario: dict[str, Any]) -> list[str]:
    outcome = result["outcome"]
    opened = " open" if outcome in ("fail", "xpass") else ""
    parts = [
        f'<details id="{anchor}"{opened}><summary style="background:{COLOURS[outcome]}">'
        f"{escape(result['testee'])} / {escape(result['scenario'])}: {escape(NAMES[outcome])}"
        f" ({result['seconds']:.2f} s)</summary>",
        f"<p>{escape(scenario['title'])} <span class=dim>({escape(scenario['file'])})</span></p>",
    ]
    if result["message"]:
        parts.append(f"<pre>{escape(result['message'])}</pre>")
    if result.get("expected_failure"):
        parts.append(f"<p>Listed as an expected failure: {escape(result['expected_failure'])}</p>")
    if result["details"]:
        parts.append(
            f"<h4>What went wrong</h4><pre>{escape(chr(10).join(result['details']))}</pre>"
        )
    if result["steps"]:
        steps = "".join(f"<li>{escape(step)}</li>" for step in result["steps"])
        parts.append(f"<h4>Steps played</h4><ol>{steps}</ol>")
    for process in result["processes"]:
        parts.append(
            f"<h4>{escape(process['label'])}: {escape(process['status'])}</h4>"
            f"<pre>{escape(process['command'])}</pre>"
            f"<p>stderr:</p><pre>{escape(process['stderr'] or '(empty)')}</pre>"
        )
        if process.get("stdout"):
            parts.append(f"<p>stdout:</p><pre>{escape(process['stdout'])}</pre>")
    parts.append("</details>")
    return parts


def page(data: dict[str, Any]) -> str:
    """The whole page from the JSON report's data."""
    anchors = {(r["testee"], r["scenario"]): f"cell-{n}" for n, r in enumerate(data["results"])}
    scenarios = {s["id"]: s for s in data["scenarios"]}
    summary = data["summary"]
    counts = ", ".join(f"{value} {name}" for name, value in summary.items())
    legend = "".join(
        f'<span style="background:{colour}">{escape(NAMES[name])}</span>'
        for name, colour in COLOURS.items()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>pipe-io-server conformance report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>pipe-io-server conformance report</h1>",
        f"<p>{escape(data['created'])}, played in {data['seconds']:.1f} s: {escape(counts)}</p>",
        f'<p class="legend">{legend}</p>',
        *_matrix(data, anchors),
        '<h2>Scenarios</h2><ol class="scenarios">',
        *(
            f"<li><b>{escape(s['id'])}</b> ({escape(s['role'])}): {escape(s['title'])}</li>"
            for s in data["scenarios"]
        ),
        "</ol>",
    ]
    missing = [t for t in data["testees"] if t["missing"]]
    for testee in missing:
        how = f"; install with: {testee['install']}" if testee["install"] else ""
        parts.append(
            f"<p>Skipped {escape(testee['label'])}: needs "
            f"{escape(', '.join(testee['missing']) + how)}</p>"
        )
    parts.append("<h2>Cells</h2>")
    for result in data["results"]:
        key = (result["testee"], result["scenario"])
        parts += _cell(result, anchors[key], scenarios[result["scenario"]])
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
