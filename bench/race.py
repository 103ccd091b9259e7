"""How wide the outbound races of PROTOCOL.md section 4, guarantee 6, are on this machine.

    python -m bench.race [--sessions N]

Managed out_pipe: from the moment a reader's open() returns to the moment the path names a
fresh FIFO. A second reader that opens within it shares the first one's pipe; nothing has
been written to that pipe yet, so it can only take over an empty stream.

Unmanaged out_pipe: from a reader's close() to the moment the server has taken the leftovers
out of the shared pipe. A reader that opens within it joins the old stream, and may read the
rest of a message the first reader left mid-way.

Each figure is measured by the reader in the same process as the server, from the server's
own log of the event, over many sessions; the machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import tempfile
import time

from pipe_io_server import PipeWriterServer


class _Events(logging.Handler):
    def __init__(self, wanted: str) -> None:
        super().__init__(logging.DEBUG)
        self.wanted = wanted
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.wanted):
            self.times.append(time.monotonic())


def _watch(wanted: str) -> _Events:
    events = _Events(wanted)
    logger = logging.getLogger("pipe_io_server")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(events)
    return events


def _settle(events: _Events, count: int) -> float:
    deadline = time.monotonic() + 5
    while len(events.times) < count and time.monotonic() < deadline:
        time.sleep(0.0002)
    return events.times[count - 1] if len(events.times) >= count else float("nan")


def managed(folder: str, sessions: int) -> list[float]:
    """Seconds from a reader's open() to its session's renewal of the path."""
    events = _watch("reader connected")
    widths = []
    with PipeWriterServer(os.path.join(folder, "managed"), send_timeout=None) as server:
        for session in range(1, sessions + 1):
            fd = os.open(server.out_pipe, os.O_RDONLY)
            opened = time.monotonic()
            widths.append(_settle(events, session) - opened)
            os.close(fd)
    logging.getLogger("pipe_io_server").removeHandler(events)
    return widths


def unmanaged(folder: str, sessions: int) -> list[float]:
    """Seconds from a reader's close() to the server having drained the shared pipe."""
    path = os.path.join(folder, "unmanaged")
    os.mkfifo(path, 0o600)
    events = _watch("reader left")
    widths = []
    with PipeWriterServer(path, manage_pipes=False, send_timeout=None) as server:
        server.send_message(b"x" * 100)  # each reader takes half of it and leaves: it comes again
        for session in range(1, sessions + 1):
            fd = os.open(path, os.O_RDONLY)
            os.read(fd, 50)
            os.close(fd)
            closed = time.monotonic()
            widths.append(_settle(events, session) - closed)
    logging.getLogger("pipe_io_server").removeHandler(events)
    return widths


def _describe(name: str, widths: list[float]) -> str:
    micro = sorted(w * 1e6 for w in widths if not math.isnan(w))
    p99 = micro[int(len(micro) * 0.99) - 1]
    return (
        f"{name:10} median {statistics.median(micro):7.1f} us   p99 {p99:8.1f} us   "
        f"max {micro[-1]:8.1f} us   ({len(micro)} sessions)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.race", description=__doc__)
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        print(_describe("managed", managed(folder, args.sessions)))
        print(_describe("unmanaged", unmanaged(folder, args.sessions)))
    print(f"load average after:  {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
