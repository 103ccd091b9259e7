"""pipe-io-server 1.0.3's server as an echo testee: python server.py IN OUT (in its own venv).

1.0.3 is a threading.Thread with handle_message to override; this echoes every message
and stops on SIGTERM, so the suite can show what it catches in the version users have.
"""

from __future__ import annotations

import signal
import sys
import time

from pipe_io_server import PipeIOServer


class Echo(PipeIOServer):
    def handle_message(self, message: bytes) -> None:
        self.send_message(message)


def main(in_pipe: str, out_pipe: str) -> int:
    # The handler only sets a flag: it may run inside a wait that holds a lock it would need.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    server = Echo(in_pipe, out_pipe)
    server.start()
    while not stopping:
        time.sleep(0.05)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
