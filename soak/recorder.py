"""The server under test, run in its own process so the driver can watch its fds, threads and RSS.

It drives one server face (faces.py; the reference `PipeIOServer` by default) with a handler
that records every message it is handed and echoes it, wrapped in a new self-checking frame
`o<instance>:<outseq>:...`, so the checker can tell what the server sent from what the
clients wrote. The driver steers it
over a Unix socket, one JSON line per request: start, stop (restart = stop + start on the
same paths), state, writer (for the end-of-file gate), flood, mark, quit.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import faulthandler
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import zlib
from pathlib import Path
from typing import Any, TextIO

from pipe_io_server import BacklogFull

from . import wire
from .clients import die_with_parent
from .faces import FACES, Face
from .heap import live_heap

FLOOD_GIVES_UP = 5  # BacklogFull answers before a flood stops
MARK_WAIT = 20.0  # for backlog room for a mark
_RETRYING = "retrying until it is back"  # resources.Shortage's wording
_BACK = "back after %.1f s"


class Recorder:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(args.dir)
        self.lock = threading.Lock()  # the logs and counters below
        self.send_lock = threading.Lock()  # one sender at a time: outseq order is push order
        self.handled: TextIO = open(self.dir / "handled.log", "w", buffering=1 << 20)  # noqa: SIM115
        self.sent: TextIO = open(self.dir / "sent.log", "w", buffering=1 << 20)  # noqa: SIM115
        self.events: TextIO = open(self.dir / "events.log", "w", buffering=1 << 16)  # noqa: SIM115
        self.server: Face | None = None
        self.inst = 0
        self.position = 0  # handled messages and end-of-file events share one order
        self.outseq = 0
        self.eofs = 0
        self.in_pipe_short = False  # the server is waiting out a shortage to reopen in_pipe
        self.connections = self.departures = 0  # out_pipe readers the server saw come and go
        self.counts: dict[str, int] = {}
        # writer -> (instance, seq, the message's place among those the instance handled)
        self.last: dict[int, tuple[int, int, int]] = {}
        self.handled_here = 0  # messages the running instance has handled
        # instance -> (ends of file before it, its stats.received at each of its ends of
        # file): a face may handle a message after its reader has read on, end of file too.
        self.eof_marks: dict[int, tuple[int, list[int]]] = {}
        self.face: Face | None = None  # the running instance, from the start of its start()
        self.floods: list[threading.Thread] = []
        self.flood_full = 0
        self.flood_sent = 0
        self.stats: dict[int, dict[str, int]] = {}

    # -- the server side ------------------------------------------------------------------

    def handle(self, server: Face, inst: int, message: bytes) -> None:
        parsed = wire.parse(message)
        with self.lock:
            position = self.position
            self.position += 1
            place = self.handled_here
            self.handled_here += 1
            if parsed is not None and parsed.tag.startswith("w") and parsed.tag[1:].isdigit():
                writer = int(parsed.tag[1:])
                self.last[writer] = (inst, parsed.seq, place)
                self.handled.write(
                    f"H {inst} {position} {writer} {parsed.seq} {parsed.size} {parsed.crc}\n"
                )
                ref = f"{writer}.{parsed.seq}"
            elif parsed is None and len(message) <= wire.ANONYMOUS_MAX:
                self.handled.write(f"A {inst} {position} {message.hex() or '-'}\n")
                ref = "anon"
            else:
                self.handled.write(f"B {inst} {position} {json.dumps(wire.evidence(message))}\n")
                ref = "bad"
        self.send(server, inst, message, ref)

    def send(self, server: Face, inst: int, body: bytes, ref: str, framed: bool = True) -> int:
        """Send body in a frame (or, for an anonymous message, as it is) and log it.

        sent.log: `S instance outseq ref size crc [a]`, size and CRC of the body (a: sent
        as it is); `E instance ref error` for a send that raised. Returns the outseq.
        """
        with self.send_lock:
            if framed:
                message, crc = wire.frame(f"o{inst}", self.outseq, body)
            else:
                message, crc = body, zlib.crc32(body)
            try:
                server.send(message)
            except Exception as error:
                with self.lock:
                    self.sent.write(f"E {inst} {ref} {type(error).__name__}\n")
                raise
            with self.lock:
                anonymous = "" if framed else " a"
                self.sent.write(f"S {inst} {self.outseq} {ref} {len(body)} {crc}{anonymous}\n")
            self.outseq += 1
            return self.outseq - 1

    def on_log(self, record: logging.LogRecord) -> None:
        text = str(record.msg)
        with self.lock:
            if text.startswith("all writers left"):
                self.eofs += 1
                self.position += 1
                if self.face is not None:
                    self.eof_marks[self.inst][1].append(self.face.stats()["received"])
            elif text.startswith("reader connected"):
                self.connections += 1
            elif text.startswith("reader left"):
                self.departures += 1
            elif text.endswith((_RETRYING, _BACK)) and record.getMessage().startswith(
                "cannot reopen"
            ):
                # While in_pipe cannot be reopened, the server reads it only between retries
                # and logs "all writers left" only once the reopen succeeds.
                self.in_pipe_short = text.endswith(_RETRYING)
            key = " ".join(text.split()[:3])
            self.counts[key] = self.counts.get(key, 0) + 1
            if record.levelno >= logging.INFO:
                self.events.write(
                    f"{time.monotonic():.6f} {self.inst} {record.levelname} {record.getMessage()}\n"
                )

    def flood(
        self, server: Face, inst: int, number: int, count: int, *, size: int, kind: str | None
    ) -> None:
        """Send count messages as fast as the server takes them: framed ones of `size` bytes,
        or anonymous ones of `kind` (empty, tiny)."""
        rng = random.Random(f"{self.args.seed}:flood:{number}")
        refused = 0
        for k in range(count):
            if kind is None:
                data = b"f%d:%d:" % (number, k) + wire.body(rng, size)
            else:
                data = wire.anonymous(kind, k)
            try:
                self.send(server, inst, data, f"f{number}.{k}", framed=kind is None)
            except BacklogFull:
                with self.lock:
                    self.flood_full += 1
                refused += 1
                if refused == FLOOD_GIVES_UP:
                    return  # as a producer does when no reader keeps up
            except RuntimeError:
                return  # the server stopped under the producer
            else:
                with self.lock:
                    self.flood_sent += 1

    # -- requests from the driver ---------------------------------------------------------

    def start(self) -> dict[str, Any]:
        args = self.args
        with self.send_lock:
            self.outseq = 0
        with self.lock:
            self.inst += 1
            self.connections = self.departures = 0  # a stopped server logs no departure
            self.in_pipe_short = False
            self.handled_here = 0
            self.eof_marks[self.inst] = (self.eofs, [])
        inst = self.inst
        server = FACES[args.face](
            args.in_pipe,
            args.out_pipe,
            max_message_size=args.max_message_size,
            max_backlog=args.max_backlog,
            send_timeout=args.send_timeout,
            handler=lambda message: self.handle(server, inst, message),
        )
        self.face = server
        server.start()
        self.server = server
        return {
            "inst": inst,
            "server": server.code,
            "in_ino": os.stat(args.in_pipe).st_ino,
        }

    def stop(self) -> dict[str, Any]:
        server, self.server = self.server, None
        if server is None:
            return {"stopped": False}
        began = time.monotonic()
        server.stop()
        seconds = time.monotonic() - began
        # What a face runs in threads of its own must be gone once stop() has returned.
        threads = [t.name for t in threading.enumerate() if t.name.startswith("pipe_io_server")]
        for thread in self.floods:
            thread.join(5)
        self.floods = [t for t in self.floods if t.is_alive()]
        stats = server.stats()
        self.stats[self.inst] = stats
        self.flush()
        return {
            "stopped": True,
            "inst": self.inst,
            "seconds": seconds,
            "stats": stats,
            "threads": threads,
        }

    def flush(self) -> None:
        with self.lock:
            for log in (self.handled, self.sent, self.events):
                log.flush()

    def state(self) -> dict[str, Any]:
        self.floods = [t for t in self.floods if t.is_alive()]
        with self.lock:
            return {
                "inst": self.inst,
                "running": self.server is not None,
                "stats": self.server.stats() if self.server else None,
                "eofs": self.eofs,
                "connections": self.connections,
                "departures": self.departures,
                "position": self.position,
                "outseq": self.outseq,
                "floods": len(self.floods),
                "flood_full": self.flood_full,
                "flood_sent": self.flood_sent,
                "counts": dict(self.counts),
                "in_pipe_short": self.in_pipe_short,
            }

    def memory(self) -> dict[str, Any]:
        return {"live": live_heap()}

    def writer(self, writer: int) -> dict[str, Any]:
        with self.lock:
            inst, seq, place = self.last.get(writer, (0, -1, 0))
            before, marks = self.eof_marks.get(inst, (0, []))
            return {
                "inst": inst,
                "seq": seq,
                "eofs_then": before + bisect.bisect_right(marks, place),  # read before it
                "eofs": self.eofs,
                "position": self.position,
            }

    def mark(self, number: int) -> dict[str, Any]:
        """A framed message after everything sent: a reader that has it has all before it.

        The backlog may be full: a reader the driver started first makes room. -1 if none
        came in MARK_WAIT seconds.
        """
        server = self.server
        deadline = time.monotonic() + MARK_WAIT
        while server is not None and time.monotonic() < deadline:
            with contextlib.suppress(BacklogFull):
                return {"seq": self.send(server, self.inst, b"mark-%d" % number, "mark")}
        return {"seq": -1}

    def start_flood(
        self, number: int, count: int, size: int, kind: str | None = None
    ) -> dict[str, Any]:
        server = self.server
        if server is None:
            return {"started": False}
        thread = threading.Thread(
            target=self.flood,
            args=(server, self.inst, number, count),
            kwargs={"size": size, "kind": kind},
            name="soak flood",
            daemon=True,
        )
        thread.start()
        self.floods.append(thread)
        return {"started": True}

    def serve(self, control: socket.socket) -> None:
        connection, _ = control.accept()
        with connection, connection.makefile("rwb", buffering=0) as stream:
            for line in stream:
                request = json.loads(line)
                op = request.pop("op")
                if op == "quit":
                    self.stop()
                    stream.write(b"{}\n")
                    return
                answer = getattr(self, op)(**request)
                stream.write(json.dumps(answer).encode() + b"\n")


class _Hook(logging.Handler):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(logging.DEBUG)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        self.recorder.on_log(record)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m soak.recorder")
    parser.add_argument("--in", dest="in_pipe", required=True)
    parser.add_argument("--out", dest="out_pipe", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--seed", default="0")
    parser.add_argument("--max-message-size", type=int, required=True)
    parser.add_argument("--max-backlog", type=int, required=True)
    parser.add_argument("--send-timeout", type=float, required=True)
    parser.add_argument("--face", choices=sorted(FACES), default="threaded")
    args = parser.parse_args()
    die_with_parent()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks on demand, for evidence
    recorder = Recorder(args)
    logger = logging.getLogger("pipe_io_server")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(_Hook(recorder))
    logger.propagate = False
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(args.control)
    control.listen(1)
    recorder.serve(control)


if __name__ == "__main__":
    main()
