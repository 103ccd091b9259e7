"""The docs' example checker fails on a wrong example and points at its Markdown line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKER = Path(__file__).resolve().parents[1] / "check_doc_examples.py"

GOOD = """\
```python
from pipe_io_server import PipeIOServer

server = PipeIOServer("/tmp/in", "/tmp/out")
```
"""
BAD = """\
Some prose, then a shell block that is not checked:

```sh
echo 'not python'
```

```python
count: int = "three"
```
"""


def run(*documents: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *map(str, documents)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_typed_example_passes(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    done = run(tmp_path / "good.md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 Python examples" in done.stdout


def test_a_wrong_example_fails_at_its_markdown_line(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    (tmp_path / "bad.md").write_text(BAD)
    done = run(tmp_path / "good.md", tmp_path / "bad.md")
    assert done.returncode == 1
    assert f"{tmp_path / 'bad.md'}:8: error: Incompatible types in assignment" in done.stdout


def test_no_example_at_all_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "prose.md").write_text("no code here\n")
    done = run(tmp_path / "prose.md")
    assert done.returncode == 1
    assert "no ```python blocks" in done.stderr
