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


def main() -> None:
    print("ready", flush=True)
    source = os.open(sys.argv[1], os.O_RDONLY)
    sink = os.open(sys.argv[2], os.O_WRONLY)
    if len(sys.argv) > 3:
        for fd in (source, sink):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, int(sys.argv[3]))
    # One buffer for every read: os.read() would allocate and free a buffer each time,
    # which above malloc's mmap threshold costs about 10 us a round trip.
    buffer = memoryview(bytearray(1024 * 1024))
    while count := os.readv(source, [buffer]):
        view = buffer[:count]
        while view:
            view = view[os.write(sink, view) :]
    os.close(source)
    os.close(sink)
    signal.pause()


if __name__ == "__main__":
    main()
