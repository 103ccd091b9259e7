"""`python -m soak`: the options, the run, the checks, the verdict."""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
import time
from pathlib import Path

from .driver import Driver
from .faces import FACES
from .report import verdict
from .watch import MiB


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m soak",
        description="Chaos soak of the reference server: random clients, faults and restarts, "
        "checked message by message.",
    )
    parser.add_argument("--duration", type=float, default=120, help="seconds (default 120)")
    parser.add_argument("--seed", type=int, help="replays the same choices (default: random)")
    parser.add_argument("--max-message-size", type=int, default=4 * MiB)
    parser.add_argument("--max-backlog", type=int, default=8 * MiB)
    parser.add_argument("--send-timeout", type=float, default=0.5)
    parser.add_argument(
        "--face",
        choices=sorted(FACES),
        default="threaded",
        help="how the server under test is run (default threaded: PipeIOServer)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="trace the phases on stderr")
    parser.add_argument(
        "--json", type=Path, help="write the summary here instead of on standard output"
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="pio-soak-"))
    print(f"soak: {args.duration:g} s, seed {args.seed}, work folder {work}", flush=True)
    driver = Driver(args, work)
    try:
        driver.run()
        driver.server.ask("flush")
        driver.oracle.check_inbound(work)
        driver.oracle.check_outbound(work)
        driver.oracle.check_events(work)
    finally:
        driver.close()
    return verdict(driver, args, work, time.monotonic() - driver.began)
