"""Echo server for the benchmarks: `python echo_server.py IN OUT`.

The same file runs under this project's venv and under the legacy venv, where the same
import name is pipe-io-server 1.0.3, so both are measured with the same subclass. It prints
"ready VERSION" once the server has started and stops cleanly on SIGTERM or SIGINT.
"""

import signal
import sys
from importlib.metadata import version

from pipe_io_server import PipeIOServer


class EchoServer(PipeIOServer):
    def handle_message(self, message):  # type: ignore[no-untyped-def]
        self.send_message(message)


def main() -> None:
    in_pipe, out_pipe = sys.argv[1:3]
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before the server's threads exist, so they inherit the mask and only
    # sigwait below ever takes these signals.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = EchoServer(in_pipe, out_pipe)
    server.start()
    print("ready", version("pipe-io-server"), flush=True)
    signal.sigwait(stop_signals)
    server.stop()


if __name__ == "__main__":
    main()
