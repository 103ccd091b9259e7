"""Run make targets one after another and end with one line per target and a verdict.

`make test` runs its stages through this. Each stage's output goes to the screen as it comes
and to LOG_DIR/STAGE.log. A failing stage does not stop the others, nor (make --keep-going)
the rest of its own targets, so one run shows every failure; the exit status is 1 if any
stage failed. A `skip-LANG` stage (a client whose toolchain is missing) counts as skipped
when it succeeds.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NOTE_WIDTH = 72


@dataclass
class Stage:
    name: str
    result: str = "not run"
    seconds: float = 0.0
    note: str = ""


def run_stage(make: list[str], stage: Stage, log_dir: Path) -> None:
    print(f"==> make {stage.name}", flush=True)
    began = time.monotonic()
    last = ""
    with (log_dir / f"{stage.name}.log").open("w", encoding="utf-8") as log:
        child = subprocess.Popen(
            [*make, "--no-print-directory", "--keep-going", stage.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        assert child.stdout is not None
        try:
            for line in child.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
                if line.strip() and not line.startswith("make"):
                    last = line.strip()
            status = child.wait()
        except BaseException:
            child.kill()
            child.wait()
            stage.result = "stopped"
            raise
    stage.seconds = time.monotonic() - began
    if status != 0:
        stage.result, stage.note = "FAILED", last.strip("= ")
    elif stage.name.startswith("skip-"):
        stage.result, stage.note = "skipped", last
    else:
        stage.result = "passed"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def report(stages: list[Stage], log_dir: Path, seconds: float) -> str:
    width = max(len(stage.name) for stage in stages)
    lines = ["", f"{'stage':<{width}}  result   seconds  why (the last line of its output)"]
    for stage in stages:
        note = stage.note if len(stage.note) <= NOTE_WIDTH else stage.note[: NOTE_WIDTH - 3] + "..."
        lines.append(f"{stage.name:<{width}}  {stage.result:<7}  {stage.seconds:7.0f}  {note}")
    results = [stage.result for stage in stages]
    tally = ", ".join(f"{results.count(r)} {r.lower()}" for r in dict.fromkeys(results))
    failed = [stage.name for stage in stages if stage.result not in ("passed", "skipped")]
    verdict = f"FAILED ({', '.join(failed)}; logs in {log_dir}/)" if failed else "PASSED"
    lines.append(f"make test: {verdict}: {tally} in {_duration(seconds)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--make", default="make", help="the make command (default make)")
    parser.add_argument("--log-dir", type=Path, default=Path("build/test-logs"))
    parser.add_argument("stages", nargs="+", metavar="STAGE", help="make targets, in order")
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    make = shlex.split(args.make)
    stages = [Stage(name) for name in dict.fromkeys(args.stages)]
    began = time.monotonic()
    try:
        for stage in stages:
            run_stage(make, stage, args.log_dir)
    except KeyboardInterrupt:
        print(report(stages, args.log_dir, time.monotonic() - began), flush=True)
        return 130
    print(report(stages, args.log_dir, time.monotonic() - began), flush=True)
    return 1 if any(stage.result == "FAILED" for stage in stages) else 0


if __name__ == "__main__":
    sys.exit(main())
