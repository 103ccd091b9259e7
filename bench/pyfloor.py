"""A byte echo in Python between two FIFOs: `python pyfloor.py IN OUT` (the FIFOs must exist).

One thread and no framing, so it shows the best any Python server can do on this machine;
the benchmarks measure it only when asked (SERVERS=...,pyfloor). Like the C floor, it
waits for a signal after end of file so that its peak memory can be read.
"""

import os
import signal
import sys


def main() -> None:
    print("ready", flush=True)
    source = os.open(sys.argv[1], os.O_RDONLY)
    sink = os.open(sys.argv[2], os.O_WRONLY)
    # 64 KiB is a pipe's default capacity. Asking for more makes CPython allocate (and
    # free) a buffer above malloc's mmap threshold on every read: about 10 us a round trip.
    while data := os.read(source, 64 * 1024):
        view = memoryview(data)
        while view:
            view = view[os.write(sink, view) :]
    os.close(source)
    os.close(sink)
    signal.pause()


if __name__ == "__main__":
    main()
