"""report.html opened in a headless Chromium: it renders the matrix and each cell's story
without the network; a screenshot is kept under build/ as a test artefact."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conformance.tests.conftest import BROKEN, CONTROL, ROOT

ARTEFACTS = ROOT / "build" / "conformance"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is missing: apt-get install -y chromium (make conformance does it as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def browse(page: Path, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.timeout(240)
def test_the_html_report_renders_in_chromium(suite: Any, tmp_path: Path) -> None:
    broken = f"python3 {BROKEN.relative_to(ROOT)}/split-on-cr.py {{recv}} {{send}}"
    run = suite(
        f"--client=control={CONTROL}", f"--client=cr={broken}", "--scenario=echo-cr,echo-utf8"
    )
    page = run.reports / "report.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page loads nothing"
    dom = browse(page, tmp_path / "profile-1", "--dump-dom")
    assert dom.count('<table class="matrix">') == 1
    rows = re.findall(r'<tr><th class="row">([^<]+)</th>', dom)
    assert rows == ["testee \\ scenario", "control", "cr"]
    assert re.search(r'background:#f4b4b4" title="echo-cr: FAILED"><a href="#cell-\d+">FAIL', dom)
    assert "first difference at byte 1: expected 0x0d, got end of message" in dom
    assert "Steps played" in dom and "stderr:" in dom
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "report.png"
    shot.unlink(missing_ok=True)
    browse(page, tmp_path / "profile-2", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
