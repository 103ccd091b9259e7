"""What is measured: the cases, and where their programs and results live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = ROOT / "build" / "bench"
RESULTS = BENCH / "results"
MIB = 1024 * 1024
WINDOW = 8 * MIB  # bytes a stream keeps unanswered (at least two messages)
# A client's stream keeps less: enough to keep both pipes busy, and the slowest client (bash)
# answers it in about two seconds once the writer stops.
CLIENT_WINDOW = MIB
PIPE_SIZE = MIB  # the capacity our server gives its FIFOs (fifo.PIPE_SIZE)


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    mode: str  # "pingpong" or "stream": how the load client drives the echoes
    size: int = 64
    # Ping-pong pins the load client to one CPU and each echo to the same one ("one") or to
    # another ("two"). Left to the scheduler, a round trip lands on one of the two, by
    # chance and for minutes: on a virtual machine a wake-up across CPUs costs ~30 µs.
    cpus: str = ""
    # "servers": the servers chosen, each between two FIFOs. "clients": cat, the C echo and
    # each client's echo example, with the load client playing the server's side.
    echoes: str = "servers"


CASES = [
    Case("pingpong", "ping-pong 64 B, one CPU", "pingpong", cpus="one"),
    Case("pingpong2", "ping-pong 64 B, two CPUs", "pingpong", cpus="two"),
    Case("stream64", "stream 64 B", "stream", 64),
    Case("stream1k", "stream 1 KiB", "stream", 1024),
    Case("stream16k", "stream 16 KiB", "stream", 16 * 1024),
    Case("stream256k", "stream 256 KiB", "stream", 256 * 1024),
    Case("stream4m", "stream 4 MiB", "stream", 4 * MIB),
    Case("stream16m", "stream 16 MiB", "stream", 16 * MIB),
    Case("clients64", "clients: stream 64 B", "stream", 64, echoes="clients"),
    Case(
        "clientsrtt", "clients: ping-pong 64 B, one CPU", "pingpong", cpus="one", echoes="clients"
    ),
    Case("clients16m", "clients: stream 16 MiB", "stream", 16 * MIB, echoes="clients"),
]
CASE_BY_NAME = {case.name: case for case in CASES}
ALIASES = {
    "all": [case.name for case in CASES],
    "latency": ["pingpong", "pingpong2"],
    "pipelined": ["stream64"],
    "large": ["stream4m", "stream16m"],
    "sweep": [case.name for case in CASES if case.mode == "stream" and case.echoes == "servers"],
    "clients": [case.name for case in CASES if case.echoes == "clients"],
}
SMOKE_CASES = ["pingpong", "pingpong2", "stream64", "stream4m", *ALIASES["clients"]]


class BenchError(Exception):
    pass


def shown(path: Path) -> str:
    """A path as the user would type it from the repository root."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
