"""Our server's message path rebuilt a step at a time: `python -m bench.ladder STEP IN OUT [SIZE]`.

Each step adds one cost to the step before it, starting from pyfloor.py's byte echo:

  poll      wait in poll() before each read, as the server does to be stoppable
  framing   split what was read into messages, with the server's own Decoder
  dispatch  call handle_message() per message, which calls send_message()
  lock      send_message() takes a lock, as a server whose threads may all send must

The replies of one read leave in one write, as the server batches them. Measured in one run
beside pyfloor and our server (`make bench-profile`), the differences between neighbours are
what each step costs per message; what our server costs beyond `lock` is its outbound
bookkeeping (the backlog, its limit, redelivery). Like pyfloor.py, it prints "ready", sets the
pipes' capacity when told, and waits for a signal after end of file.
"""

from __future__ import annotations

import os
import select
import sys
import threading

from pipe_io_server.framing import Decoder

from bench.pyfloor import close_and_wait, open_pipes

STEPS = ["poll", "framing", "dispatch", "lock"]
READ_SIZE = 1024 * 1024


class Dispatch:
    def __init__(self) -> None:
        self.replies: list[bytes] = []

    def handle_message(self, message: bytes) -> None:
        self.send_message(message)

    def send_message(self, message: bytes) -> None:
        self.replies.append(message)


class Locked(Dispatch):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def send_message(self, message: bytes) -> None:
        with self._lock:
            self.replies.append(message)


def _write(sink: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(sink, view) :]


def echo(step: int, source: int, sink: int) -> None:
    """Until end of file; `step` is how many of STEPS to take."""
    poller = select.poll()
    wake_r, _ = os.pipe()  # registered as the server's is, never written
    poller.register(wake_r, select.POLLIN)
    poller.register(source, select.POLLIN)
    buffer = memoryview(bytearray(READ_SIZE))
    decoder = Decoder(None, read_size=READ_SIZE)
    handler = Locked() if step >= 4 else Dispatch()
    while True:
        if step >= 1:
            poller.poll()
        if step < 2:
            count = os.readv(source, [buffer])
            if not count:
                return
            _write(sink, buffer[:count])
            continue
        count = os.readv(source, [decoder.get_buffer()])
        if not count:
            return
        messages = decoder.buffer_updated(count)
        if step >= 3:
            for message in messages:
                handler.handle_message(message)
            messages, handler.replies = handler.replies, []
        if messages:
            messages.append(b"")
            _write(sink, b"\n".join(messages))


def main() -> None:
    step = STEPS.index(sys.argv[1]) + 1
    source, sink = open_pipes(sys.argv[2:])
    echo(step, source, sink)
    close_and_wait(source, sink)


if __name__ == "__main__":
    main()
