"""BROKEN ON PURPOSE: an echo server that glues a departed client's tail to the next client.

It holds in_pipe open for reading and writing, so it never sees end of file and never
learns that a writer left mid-message: what pipe-io-server 1.0.3 did.
"""

import os
import signal
import sys
import threading


def main(in_pipe: str, out_pipe: str) -> None:
    for path in (in_pipe, out_pipe):
        os.mkfifo(path, 0o600)

    def stop(signum: int, frame: object) -> None:
        for path in (in_pipe, out_pipe):
            os.unlink(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    out: list[int] = []
    opened = threading.Event()

    def open_out() -> None:
        out[:] = [os.open(out_pipe, os.O_WRONLY)]
        opened.set()

    threading.Thread(target=open_out, daemon=True).start()
    reader = os.open(in_pipe, os.O_RDWR)
    pending = b""
    while True:
        pending += os.read(reader, 1 << 16)
        *messages, pending = pending.split(b"\n")
        for message in messages:
            opened.wait()
            try:
                os.write(out[0], message + b"\n")
            except BrokenPipeError:
                os.close(out[0])
                open_out()
                os.write(out[0], message + b"\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
