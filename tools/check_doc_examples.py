"""Type-check the Python examples of the docs: every ```python block, with mypy --strict.

Each block is checked as a program of its own, against the package and the Python client,
for the oldest Python mypy still checks (the package runs on 3.9); errors point at the
Markdown file and line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLDEST_PYTHON = "3.10"
# The folders whose modules the examples import: the package and the rendered Python client.
IMPORT_PATHS = (ROOT / "server", ROOT / "clients" / "python")
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


@dataclass
class Example:
    document: Path
    line: int  # of the first line of code, 1-based
    code: str


def examples(document: Path, language: str = "python") -> list[Example]:
    """The fenced code blocks of one language, in order."""
    text = document.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        if match["info"].strip().split(" ")[0] == language:
            line = text.count("\n", 0, match.start("body")) + 1
            found.append(Example(document, line, match["body"]))
    return found


def check(documents: list[Path]) -> int:
    blocks = [example for document in documents for example in examples(document)]
    if not blocks:
        print("no ```python blocks found in " + ", ".join(map(str, documents)), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="doc-examples-") as folder:
        by_file = {}
        for number, example in enumerate(blocks):
            path = Path(folder) / f"example_{number}.py"
            path.write_text(example.code, encoding="utf-8")
            by_file[str(path)] = example
        env = dict(os.environ, MYPYPATH=os.pathsep.join(map(str, IMPORT_PATHS)))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--python-version",
                OLDEST_PYTHON,
                "--no-incremental",
                "--hide-error-context",
                "--no-error-summary",
                *by_file,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
    for line in (done.stdout + done.stderr).splitlines():
        print(_in_document(line, by_file))
    if done.returncode == 0:
        print(f"{len(blocks)} Python examples in {len(documents)} documents pass mypy --strict")
    return done.returncode


def _in_document(line: str, by_file: dict[str, Example]) -> str:
    """Point a mypy message at the Markdown line the code came from."""
    path, sep, rest = line.partition(":")
    example = by_file.get(path)
    number, sep2, message = rest.partition(":")
    if example is None or not sep or not sep2 or not number.isdigit():
        return line
    return f"{example.document}:{example.line + int(number) - 1}:{message}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("documents", nargs="+", type=Path, help="Markdown files")
    return check(parser.parse_args(argv).documents)


if __name__ == "__main__":
    sys.exit(main())
