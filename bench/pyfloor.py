"""A byte echo in Python between two FIFOs: `python pyfloor.py IN OUT [PIPE_SIZE]`.

One thread and no framing, so it shows the best any Python server can do on this machine;
the benchmarks measure it only when asked (SERVERS=...,pyfloor). Like the C floor, it sets
the pipes' capacity when told and waits for a signal after end of file, so that its peak
memory can be read.
"""

import fcntl
import os
import signal
import sys

# Linux's value, for Pythons older than 3.10 whose fcntl module lacks the name.
F_SETPIPE_SZ: int = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def open_pipes(argv: list[str]) -> tuple[int, int]:
    """Say ready, open IN and OUT (argv: IN OUT [PIPE_SIZE]) and give them the capacity asked."""
    print("ready", flush=True)
    source = os.open(argv[0], os.O_RDONLY)
    sink = os.open(argv[1], os.O_WRONLY)
    if len(argv) > 2:
        for fd in (source, sink):
            fcntl.fcntl(fd, F_SETPIPE_SZ, int(argv[2]))
    return source, sink


def close_and_wait(source: int, sink: int) -> None:
    """After end of file: the runner reads the peak memory, then ends the process."""
    os.close(source)
    os.close(sink)
    signal.pause()


def main() -> None:
    source, sink = open_pipes(sys.argv[1:])
    # One buffer for every read: os.read() would allocate and free a buffer each time,
    # which above malloc's mmap threshold costs about 10 us a round trip.
    buffer = memoryview(bytearray(1024 * 1024))
    while count := os.readv(source, [buffer]):
        view = buffer[:count]
        while view:
            view = view[os.write(sink, view) :]
    close_and_wait(source, sink)


if __name__ == "__main__":
    main()
