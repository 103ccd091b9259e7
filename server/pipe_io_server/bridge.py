"""`serve --exec CMD`: a handler in any language, spoken to over its stdin and stdout.

Each message from the client becomes a line on CMD's standard input; each line CMD prints
goes back to the client. CMD's output is framed by the same Decoder as the pipes, so CR
and invalid UTF-8 pass untouched both ways.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from typing import Any

from .framing import NEWLINE, Decoder
from .server import PipeIOServer

log = logging.getLogger("pipe_io_server")

DRAIN_TIMEOUT = 10.0


class Bridge:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._output_done = threading.Event()

    def server(self, in_pipe: str, out_pipe: str, **options: Any) -> PipeIOServer:
        """A server wired to the process; its output is copied back once it is started."""
        server = PipeIOServer(in_pipe, out_pipe, send_timeout=None, **options)
        server.handle_message = self._forward  # type: ignore[method-assign]
        threading.Thread(
            target=self._copy_output, args=(server,), name="pipe_io_server exec", daemon=True
        ).start()
        return server

    def _forward(self, message: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(message + NEWLINE)
        stdin.flush()

    def _copy_output(self, server: PipeIOServer) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        decoder = Decoder(max_message_size=None)
        try:
            while data := os.read(stdout.fileno(), 256 * 1024):
                for line in decoder.feed(data):
                    server.send_message(line)
            decoder.close()
            for discard in decoder.discards:
                log.warning(
                    "%s printed %d bytes without a final newline: not sent",
                    self.argv[0],
                    discard.size,
                )
        except RuntimeError:
            pass  # the server stopped first
        finally:
            self._output_done.set()

    def wait(self) -> int:
        """Wait until the process has exited and all its output is queued."""
        status = self.process.wait()
        self._output_done.wait()
        return status

    def finish(self, server: PipeIOServer, interrupted: bool) -> int:
        """End the process if still running; return the exit status the CLI should give."""
        if self.process.poll() is None:
            self.kill()
        else:
            self._output_done.wait()
            if not server.flush(DRAIN_TIMEOUT):
                log.warning(
                    "no reader took the last messages of %s in %s s", self.argv[0], DRAIN_TIMEOUT
                )
        status = self.process.returncode
        if interrupted or status == 0:
            return 0
        if status < 0:
            log.error("%s was killed by signal %d", self.argv[0], -status)
            return 1
        log.error("%s exited with status %d", self.argv[0], status)
        return status

    def kill(self) -> None:
        if self.process.stdin:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
