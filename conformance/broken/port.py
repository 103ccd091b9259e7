"""An echo server ported from PROTOCOL.md alone, with plausible porting mistakes to switch on.

python3 port.py IN OUT [--max-message-size N] [--fault NAME]...

Without --fault it keeps every guarantee a FIFO client can observe, and the suite's own
tests check that it passes every server scenario. Each fault (FAULTS below) is one way a
port written in good faith loses, fragments, duplicates or reorders a message, or fails to
stop; the same tests check that each one fails at least one scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import select
import signal
import stat
import struct
import sys
import termios
import threading
import time
from collections import deque

FAULTS = {
    # out_pipe: what happens when a reader leaves
    "never-redeliver": "no requeue, no drain: the next reader gets the rest of the message",
    "drop-unread": "drains the pipe but requeues nothing: what the reader left is lost",
    "no-drain": "requeues, but leaves the old bytes in the pipe for the next reader",
    "no-renew": "one pipe for all readers, drained after each: a reader that opens at once after "
    "another left may read the rest of its message",
    "redeliver-taken": "requeues everything written to the reader, taken or not",
    "drop-partial": "requeues the wholly unread messages, drops the one the reader was in",
    "lf-not-counted": "counts a message delivered once its bytes are read, newline or not",
    "requeue-at-back": "puts requeued messages behind those still queued",
    "redeliver-once": "requeues a message once only: its second reader's departure loses it",
    "read-end-of-out": "holds a read end of out_pipe (as 1.0.3 did): never sees a reader leave",
    "drop-while-no-reader": "discards what is sent while no reader is connected",
    "bounded-queue": "keeps at most 10,000 queued messages, dropping the oldest",
    "close-out-when-idle": "closes out_pipe whenever it has nothing to write",
    "small-first": "writes short messages before long ones already queued",
    "dup-on-partial-write": "after a partial write, writes the message again from its start",
    "drop-on-partial-write": "after a partial write, drops the rest of the message",
    "blocking-echo": "replies from the reading loop and waits for the write: no back-pressure",
    # in_pipe
    "close-in-between": "closes in_pipe at end of file and reopens it 10 ms later",
    "hold-in-rdwr": "opens in_pipe read-write: never sees end of file, glues dead tails",
    "tail-as-message": "delivers an unterminated tail at end of file as a message",
    "replace-fifos": "replaces existing FIFOs: clients already waiting on them wait for ever",
    # framing
    "split-on-cr": "takes CR as a line end too",
    "strip-cr": "strips a CR before the newline",
    "skip-empty": "ignores empty messages",
    "read-is-message": "takes what one read returns as one message",
    # size limit
    "no-size-limit": "ignores max_message_size",
    "size-limit-fragments": "cuts an oversized message into pieces of the limit and sends them",
    "size-limit-no-resync": "after an oversized message, also drops the next one",
    "limit-counts-newline": "counts the newline against max_message_size",
    # stopping
    "stop-without-eof": "on SIGTERM removes the FIFOs but keeps its ends open and never exits",
    "leave-pipes": "does not remove the FIFOs when it stops",
    "stop-drains": "empties out_pipe when it stops, so the reader loses what was there",
    "stop-waits-for-open": "stop waits for the blocked open of out_pipe without meeting it",
    "exit-1": "exits with status 1 on SIGTERM",
}
CHUNK = 65536
_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL


def unread(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


class Port:
    def __init__(self, in_path: str, out_path: str, limit: int | None, faults: set[str]) -> None:
        self.in_path, self.out_path = in_path, out_path
        self.faults = faults
        self.limit = None if "no-size-limit" in faults else limit
        for path in (in_path, out_path):
            self.make_fifo(path)
        self.lock = threading.Condition()
        self.queue: deque[bytes] = deque()  # messages with their newline, not yet written
        self.connected = False  # a reader holds out_pipe
        self.busy = False  # the writer is in the middle of a message
        self.stopping = False
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK)  # the writer: a message, or stop
        self.stop_r, self.stop_w = os.pipe2(os.O_NONBLOCK)  # the reader: stop
        self.discarding = 0  # newlines still to skip after an oversized message
        # The writer's state: its write end, the messages written to the current reader
        # (maybe unread yet) and how many bytes they took, the message being written.
        self.held = -1
        self.poller = select.poll()
        self.sent: deque[bytes] = deque()
        self.written = 0
        self.current, self.offset = b"", 0
        self.requeued: set[int] = set()  # ids of messages requeued (for redeliver-once)
        # Each reader gets a fresh FIFO at the path before a byte is written to it, so the
        # next one waits its turn there; the faults about leftovers need one shared pipe.
        self.renewing = not ({"no-renew", "no-drain", "never-redeliver", "stop-drains"} & faults)
        self.out_reader = -1
        if "read-end-of-out" in faults:
            self.out_reader = os.open(out_path, os.O_RDONLY | os.O_NONBLOCK)
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.writer = threading.Thread(target=self.write_loop, daemon=True)

    def make_fifo(self, path: str) -> None:
        """Reuse a FIFO already there (clients may be waiting on it), else create one."""
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(os.lstat(path).st_mode):
                sys.exit(f"port: {path} is in the way, not a FIFO")
            if "replace-fifos" not in self.faults:
                os.chmod(path, 0o600)
                return
            os.unlink(path)
        os.mkfifo(path, 0o600)

    # in_pipe

    def read_loop(self) -> None:
        flags = os.O_RDWR if "hold-in-rdwr" in self.faults else os.O_RDONLY
        fd = os.open(self.in_path, flags | os.O_NONBLOCK)
        pending = bytearray()
        poller = select.poll()
        poller.register(self.stop_r, select.POLLIN)
        poller.register(fd, select.POLLIN)
        fresh = False  # just reopened: read before polling, and an immediate EOF means nothing
        while True:
            if not fresh and any(ready == self.stop_r for ready, _ in poller.poll()):
                return
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                fresh = False
                continue
            if data:
                fresh = False
                self.frame(pending, data)
                continue
            if fresh:
                fresh = False
                continue
            if pending and "tail-as-message" in self.faults:
                self.handle(bytes(pending))
            pending.clear()  # an unterminated tail: its writer is gone
            self.discarding = 0
            poller.unregister(fd)
            if "close-in-between" in self.faults:
                os.close(fd)
                time.sleep(0.01)
                fd = os.open(self.in_path, os.O_RDONLY | os.O_NONBLOCK)
            else:
                new = os.open(self.in_path, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
                fd = new
            poller.register(fd, select.POLLIN)
            fresh = True

    def frame(self, pending: bytearray, data: bytes) -> None:
        if "read-is-message" in self.faults:
            for line in data.split(b"\n")[:-1] or [data]:
                self.handle(line)
            return
        pending += data
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            if self.discarding:
                self.discarding -= 1
            elif self.limit is not None and len(line) + self.extra() > self.limit:
                pass  # whole in one read, and too long
            else:
                self.handle(line)
        if self.limit is not None and len(pending) + self.extra() > self.limit:
            if "size-limit-fragments" in self.faults:
                self.handle(bytes(pending[: self.limit]))
                del pending[: self.limit]
            elif not self.discarding:
                self.discarding = 2 if "size-limit-no-resync" in self.faults else 1
                pending.clear()
            else:
                pending.clear()

    def extra(self) -> int:
        return 1 if "limit-counts-newline" in self.faults else 0

    def handle(self, line: bytes) -> None:
        if "strip-cr" in self.faults:
            line = line.rstrip(b"\r")
        parts = line.split(b"\r") if "split-on-cr" in self.faults else [line]
        for part in parts:
            if part or "skip-empty" not in self.faults:
                self.send(part + b"\n")

    def send(self, message: bytes) -> None:
        with self.lock:
            if "drop-while-no-reader" in self.faults and not self.connected:
                return
            if "small-first" in self.faults and len(message) < 1024:
                position = next(
                    (n for n, m in enumerate(self.queue) if len(m) >= 1024), len(self.queue)
                )
                self.queue.insert(position, message)
            else:
                self.queue.append(message)
            if "bounded-queue" in self.faults and len(self.queue) > 10000:
                self.queue.popleft()
            os.write(self.wake_w, b"!")
            while "blocking-echo" in self.faults and (self.queue or self.busy):
                if self.stopping:
                    return
                self.lock.wait(0.1)

    # out_pipe

    def open_write_end(self) -> int:
        """Blocks until a reader is there; stop() meets it with a read end of its own."""
        fd = os.open(self.out_path, os.O_WRONLY)
        os.set_blocking(fd, False)
        return fd

    def renew(self) -> None:
        if self.renewing:
            fresh = f"{self.out_path}.next"
            os.mkfifo(fresh, 0o600)
            os.rename(fresh, self.out_path)

    def write_loop(self) -> None:
        self.held = self.open_write_end()
        self.renew()
        self.poller.register(self.wake_r, select.POLLIN)
        self.poller.register(self.held, 0)
        with self.lock:
            self.connected = True
        while self.take_next():
            if not self.current and "close-out-when-idle" in self.faults:
                os.close(self.held)
                self.sent.clear()
                self.written = 0
                with self.lock:
                    while not self.queue and not self.stopping:
                        self.lock.wait(0.1)
                self.reconnect()
                continue
            self.poller.modify(self.held, select.POLLOUT if self.current else 0)
            events = dict(self.poller.poll())
            if self.wake_r in events:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
            gone = bool(events.get(self.held, 0) & _GONE)
            if self.current and not gone:
                gone = self.write_some()
            if gone:
                self.reader_left(unread(self.held))
                if self.renewing:
                    os.close(self.held)  # the reader's own pipe goes, with what it left there
                self.reconnect(keep=not self.renewing)

    def take_next(self) -> bool:
        """Start the next queued message if none is being written; False when stopping."""
        with self.lock:
            if self.stopping:
                return False
            if not self.current and self.queue:
                self.current, self.offset = self.queue.popleft(), 0
                self.sent.append(self.current)
            self.busy = bool(self.current)
            self.lock.notify_all()
            return True

    def write_some(self) -> bool:
        """Write what the pipe takes of the current message; True if the reader is gone."""
        try:
            count = os.write(self.held, self.current[self.offset :])
        except BlockingIOError:
            return False
        except BrokenPipeError:
            return True
        self.written += count
        self.offset = self.advance(self.current, self.offset, count)
        if self.offset == len(self.current):
            self.current = b""
        if len(self.sent) > 64:
            self.written -= self.prune(self.sent, self.written - unread(self.held))
        return False

    def advance(self, message: bytes, offset: int, count: int) -> int:
        if offset + count < len(message):
            if "dup-on-partial-write" in self.faults:
                return 0
            if "drop-on-partial-write" in self.faults:
                return len(message)
        return offset + count

    def prune(self, sent: deque[bytes], consumed: int) -> int:
        """Forget messages the reader has read whole; returns how many bytes they were."""
        freed = 0
        while len(sent) > 1 and freed + len(sent[0]) <= consumed:
            freed += len(sent.popleft())
        return freed

    def reader_left(self, left: int) -> None:
        """Requeue, in order and ahead of the rest, every message the reader did not take whole."""
        sent, current, offset = list(self.sent), self.current, self.offset
        consumed = self.written - left
        self.sent.clear()
        self.current, self.offset, self.written = b"", 0, 0
        with self.lock:
            self.connected = False
        if "never-redeliver" in self.faults:
            if current:
                self.queue.appendleft(current[offset:])
            return
        requeue = []
        position = 0
        for message in sent:
            end = position + len(message)
            taken = end - 1 if "lf-not-counted" in self.faults else end
            partly_read = position < consumed
            again = "redeliver-once" in self.faults and id(message) in self.requeued
            if ("redeliver-taken" in self.faults or taken > consumed) and not (
                ("drop-partial" in self.faults and partly_read) or again
            ):
                requeue.append(message)
                self.requeued.add(id(message))
            position = end
        with self.lock:
            if "drop-unread" not in self.faults:
                if "requeue-at-back" in self.faults:
                    self.queue.extend(requeue)
                else:
                    self.queue.extendleft(reversed(requeue))
        if not self.renewing and "no-drain" not in self.faults:
            drain = os.open(self.out_path, os.O_RDONLY | os.O_NONBLOCK)
            with contextlib.suppress(BlockingIOError):
                while os.read(drain, CHUNK):
                    pass
            os.close(drain)

    def reconnect(self, keep: bool = False) -> None:
        """Wait for the next reader; with `keep`, the old write end stays open meanwhile."""
        if keep:
            os.close(self.open_write_end())
        else:
            self.poller.unregister(self.held)
            self.held = self.open_write_end()
            self.renew()
            self.poller.register(self.held, 0)
        with self.lock:
            self.connected = True

    # stopping

    def start(self) -> None:
        self.reader.start()
        self.writer.start()

    def stop(self) -> int:
        if "stop-without-eof" in self.faults:
            self.remove_fifos()
            while True:
                time.sleep(60)
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        os.write(self.wake_w, b"!")
        os.write(self.stop_w, b"!")
        if "stop-waits-for-open" in self.faults:
            self.writer.join()
        # Meet the blocking opens, so both threads see `stopping`.
        met = []
        for path, flags in ((self.out_path, os.O_RDONLY), (self.in_path, os.O_WRONLY)):
            with contextlib.suppress(OSError):
                met.append(os.open(path, flags | os.O_NONBLOCK))
        self.writer.join(1.0)
        self.reader.join(1.0)
        if "stop-drains" in self.faults:
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(met[0], CHUNK):
                    pass
        if "leave-pipes" not in self.faults:
            self.remove_fifos()
        return 1 if "exit-1" in self.faults else 0

    def remove_fifos(self) -> None:
        for path in (self.in_path, self.out_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("in_pipe")
    parser.add_argument("out_pipe")
    parser.add_argument("--max-message-size", type=int, default=64 << 20)
    parser.add_argument("--fault", action="append", default=[], choices=sorted(FAULTS))
    args = parser.parse_args()
    # The handler only sets a flag: it may run inside a wait that holds a lock it would need.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    port = Port(args.in_pipe, args.out_pipe, args.max_message_size, set(args.fault))
    port.start()
    while not stopping:
        time.sleep(0.05)
    os._exit(port.stop())


if __name__ == "__main__":
    main()
