"""`serve --exec CMD`: a handler in any language, spoken to over its stdin and stdout.

Each message from the client becomes a line on CMD's standard input; each line CMD prints
goes back to the client. CMD's output is framed by the same Decoder as the pipes, with the
same size limit, so CR and invalid UTF-8 pass untouched both ways and an endless line costs
no more memory than an incoming one.

Neither side can block the server for ever. Messages for CMD wait in a bounded queue that a
thread of its own writes to CMD; a message that finds the queue full for send_timeout seconds
(CMD stopped reading) is dropped and counted as a handler error. CMD runs in a process group
of its own, so that stopping the bridge also ends whatever CMD started and left holding its
output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
from typing import Any, Callable

from .framing import NEWLINE, Decoder
from .inbox import Inbox
from .server import PipeIOServer
from .writer import ServerStopped

log = logging.getLogger("pipe_io_server")

# How long CMD and its group get to end on SIGTERM before SIGKILL.
TERMINATE_GRACE = 0.3


class Bridge:
    def __init__(
        self,
        argv: list[str],
        *,
        max_backlog: int | None,
        send_timeout: float | None,
        max_message_size: int | None,
        on_failure: Callable[[], None],
    ) -> None:
        self.argv = argv
        self._on_failure = on_failure  # the bridge cannot go on: the session must end
        self.failure: str | None = None
        self._max_message_size = max_message_size
        self.name = os.path.basename(argv[0])
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        self._input = Inbox(max_backlog)  # messages not yet written to CMD
        self._send_timeout = send_timeout
        self._server: PipeIOServer | None = None
        self._input_gone = False  # CMD closed its standard input (it exited, most often)
        self.undelivered = 0  # messages CMD never got because its input was gone
        self._dropped = 0  # messages dropped since CMD last read: its input stayed full
        self.output_done = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._threads = [
            threading.Thread(target=self._guarded, args=(self._write_input, "input")),
            threading.Thread(target=self._guarded, args=(self._read_output, "output")),
        ]

    def server(self, in_pipe: str, out_pipe: str, **options: Any) -> PipeIOServer:
        """A server wired to CMD; CMD's output waits for backlog room, it is never dropped."""
        server = PipeIOServer(in_pipe, out_pipe, send_timeout=None, **options)
        server.handle_message = self._forward  # type: ignore[method-assign]
        self._server = server
        return server

    def start(self) -> None:
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _guarded(self, body: Callable[[], None], side: str) -> None:
        """An error a bridge thread cannot handle ends the session, logged, never silently."""
        threading.current_thread().name = f"pipe_io_server exec {side}"
        try:
            body()
        except BaseException as error:
            self.failure = f"the {side} thread of the bridge to {self.name} raised {error!r}"
            log.error("%s: the server stops", self.failure, exc_info=error)
            self._on_failure()

    # The reader thread hands each message over; a thread of its own writes them to CMD.

    def _forward(self, message: bytes) -> None:
        if self._input_gone:
            self.undelivered += 1
        # Once CMD is known to be stuck, the next messages do not wait for it again.
        elif self._input.put(message, 0 if self._dropped else self._send_timeout):
            self._caught_up()
        elif self._input_gone:
            self.undelivered += 1
        else:
            assert self._server is not None
            self._server.stats.handler_errors += 1
            if not self._dropped:
                log.error(
                    "%s has not read its input for %s s: messages for it are dropped until it does",
                    self.name,
                    self._send_timeout,
                )
            self._dropped += 1

    def _caught_up(self) -> None:
        if self._dropped:
            log.warning("%s reads again; %d messages were dropped", self.name, self._dropped)
            self._dropped = 0

    def _write_input(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        fd = stdin.fileno()
        os.set_blocking(fd, False)
        try:
            while True:
                try:
                    message = self._input.get(None)
                except EOFError:
                    return
                if not self._write_whole(fd, memoryview(message + NEWLINE)):
                    return
        except BrokenPipeError:
            self._input_gone = True
            self.undelivered += 1 + self._input.close()
        finally:
            with contextlib.suppress(OSError):
                stdin.close()  # CMD sees end of file

    def _write_whole(self, fd: int, data: memoryview) -> bool:
        """Write all of data, waiting for CMD to read; False if the bridge is stopping."""
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.register(self._wake_r, select.POLLIN)
        while data:
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                if any(ready == self._wake_r for ready, _ in poller.poll()):
                    return False
        return True

    # CMD's output, framed, goes back to the client.

    def _read_output(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None and self._server is not None
        fd = stdout.fileno()
        os.set_blocking(fd, False)
        decoder = Decoder(self._max_message_size)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not any(ready == self._wake_r for ready, _ in poller.poll()):
                try:
                    data = os.read(fd, 256 * 1024)
                except BlockingIOError:
                    continue
                if not data:
                    decoder.close()
                    break
                for line in decoder.feed(data):
                    self._server.send_message(line)
                self._report(decoder)
            self._report(decoder)
        except ServerStopped:
            pass
        finally:
            self.output_done.set()

    def _report(self, decoder: Decoder) -> None:
        for discard in decoder.discards:
            if discard.reason == "tail":
                log.warning(
                    "%s printed %d bytes without a final newline: not sent", self.name, discard.size
                )
            else:
                log.warning(
                    "%s printed a line of %d bytes, longer than max_message_size (%s): not sent",
                    self.name,
                    discard.size,
                    decoder.max_message_size,
                )
        decoder.discards.clear()

    # Ending.

    def exited(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        """End CMD and whatever it started (its process group), and the bridge's threads."""
        self._input.close()
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")
        self.kill_group(signal.SIGTERM)
        deadline = time.monotonic() + TERMINATE_GRACE
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kill_group(signal.SIGKILL)
        self.process.wait()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.undelivered:
            log.warning(
                "%s has exited; %d messages not delivered to it", self.name, self.undelivered
            )

    def kill_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def status(self) -> int:
        """The exit status the command line gives for CMD's end."""
        status = self.process.returncode
        if status is None or status == 0:
            return 0
        if status < 0:
            log.error("%s was killed by signal %d", self.name, -status)
            return 1
        log.error("%s exited with status %d", self.name, status)
        return status
