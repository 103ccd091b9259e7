"""What the parts of the driver share: the options, the seeded choices, the tallies, the
server in service and the checker."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .oracle import Oracle
from .records import Instance
from .watch import ServerProcess

GATE_TIMEOUT = 10.0


@dataclass
class Child:
    cid: int
    kind: str
    pid: int
    spec: dict[str, Any]
    started: float
    deadline: float
    kill_at: float | None
    roles: set[str]
    restarts: int
    killed: bool = False
    timed_out: bool = False


@dataclass
class Context:
    args: argparse.Namespace
    work: Path
    server: ServerProcess
    rng: random.Random
    oracle: Oracle
    began: float
    ops: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    inst: Instance | None = None  # the server instance in service
    short_of_fds: bool = False  # the server's RLIMIT_NOFILE is down to what it has open

    def trace(self, text: str) -> None:
        if self.args.verbose:
            print(f"soak: {time.monotonic() - self.began:8.3f} {text}", file=sys.stderr, flush=True)
