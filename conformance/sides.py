"""The runner's side of a scenario, one class per way of playing it.

The engine speaks in the scenario's terms (send, expect, stop the server...); a side turns
them into operations on FIFOs and processes. `ReferenceServer` and `RawServer` play the
server against a client under test; `ReferenceClients` plays the clients against a
server under test.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import fifo
from .fifo import Reader, Writer
from .process import Child, child_env, exit_text, file_tail, substitute

HERE = Path(__file__).resolve().parent
NO_READER = (
    "{path} had no reader when {who} opened it (ENXIO): the server held no read end of "
    "in_pipe at that moment, so a client's open would be refused or its message lost "
    "(PROTOCOL.md section 8: hold a read end of in_pipe at all times while running)"
)
FALSE_EOF = (
    "{path} had no writer when {who} opened it: its first read returned end of file "
    "(PROTOCOL.md section 4.6: the server keeps its write end open between readers)"
)


@dataclass(frozen=True)
class How:
    """How a raw client opens: out_pipe without blocking, or blocking opens in a thread."""

    nonblocking: bool = False
    background: bool = False


PLAIN = How()


@dataclass
class Writers:
    """A `writers` step: each writer's messages, over how many sessions; `sent` counts."""

    messages: list[list[bytes]]
    sessions: int
    idle: bool
    sent: list[int]


class Failure(Exception):
    """The testee did not do what the scenario expects (or could not be driven)."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


def signal_number(name: str) -> int:
    return int(getattr(signal, "SIG" + name))


class Side(ABC):
    """Operations the engine needs; each raises Failure or fifo.Timeout."""

    testee_kind: str

    def __init__(self, workdir: Path, pipe_names: tuple[str, str]) -> None:
        self.workdir = workdir
        self.in_pipe = str(workdir / pipe_names[0])
        self.out_pipe = str(workdir / pipe_names[1])
        self.children: list[Child] = []

    def unsupported(self, what: str) -> Failure:
        return Failure(f"scenario error: {what} is not possible with {type(self).__name__}")

    @abstractmethod
    def start(self, what: str, deadline: float) -> None: ...

    @abstractmethod
    def stop_server(self, deadline: float) -> None: ...

    @abstractmethod
    def send(self, peer: str, message: bytes, deadline: float) -> None: ...

    @abstractmethod
    def recv(self, peer: str, deadline: float, limit: int | None = None) -> bytes | None:
        """The next message from the testee, or None at end of stream.

        Raw readers take at most `limit` bytes out of the pipe (see fifo.Reader.message).
        """

    @abstractmethod
    def end_text(self, peer: str) -> str:
        """Why recv reported end of stream, for a failure report."""

    @abstractmethod
    def testee(self) -> Child | None: ...

    def write(self, peer: str, data: bytes, deadline: float) -> None:
        raise self.unsupported("write (raw bytes)")

    def eof_rest(self, peer: str, deadline: float) -> bytes:
        """Wait for end of stream; return the bytes that came before it (none is right)."""
        raise self.unsupported("expect_eof")

    def read_bytes(self, peer: str, size: int, deadline: float) -> bytes:
        raise self.unsupported("read_bytes")

    def close(self, peer: str, sides: str) -> None:
        raise self.unsupported("close")

    def connect(self, peer: str, order: list[str], deadline: float, how: How = PLAIN) -> None:
        raise self.unsupported("connect")

    def writers(self, plan: Writers, deadline: float) -> None:
        raise self.unsupported("writers")

    def create_pipes(self) -> None:
        raise self.unsupported("create_pipes")

    def pipes_left(self, deadline: float) -> list[str]:
        """Waits until both FIFOs are gone; returns the paths still there at the deadline."""
        while True:
            left = [p for p in (self.in_pipe, self.out_pipe) if os.path.lexists(p)]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.01)

    def spawn(self, peer: str, data: bytes, then: str, deadline: float) -> None:
        raise self.unsupported("spawn")

    def kill(self, target: str, signum: int, deadline: float) -> None:
        raise self.unsupported(f"kill {target}")

    def restart(self, what: str, signum: int | None, deadline: float) -> None:
        """End the testee (with `signum`, or its usual way) and start it again."""
        raise self.unsupported(f"restart {what}")

    def wait_exit(self, deadline: float) -> int | None:
        child = self.testee()
        if child is None:
            raise Failure("scenario error: expect_exit before the testee was started")
        return child.wait(max(0.0, deadline - time.monotonic()))

    def processes(self) -> list[dict[str, str]]:
        """Each process the cell started: label, command, how it ended, stderr (and stdout)."""
        found = []
        for child in self.children:
            entry = {
                "label": child.label,
                "command": child.command,
                "status": exit_text(child.returncode),
                "stderr": child.stderr_tail(),
            }
            if not child.label.startswith("peer-"):
                entry["stdout"] = child.stdout_tail()
            found.append(entry)
        return found

    def diagnostics(self) -> list[str]:
        lines = []
        for entry in self.processes():
            lines.append(f"{entry['label']}: {entry['command']}")
            lines.append(f"  after teardown: {entry['status']}")
            err = entry["stderr"]
            lines.append("  stderr: " + (err.replace("\n", "\n    ") if err else "(empty)"))
            if entry.get("stdout"):
                lines.append("  stdout: " + entry["stdout"].replace("\n", "\n    "))
        return lines

    @abstractmethod
    def teardown(self) -> None: ...


class ClientTesteeSide(Side):
    """Common part of the two ways of playing the server against a client under test."""

    testee_kind = "client"

    def __init__(self, workdir: Path, pipe_names: tuple[str, str], client_run: str) -> None:
        super().__init__(workdir, pipe_names)
        self.client_run = client_run

    def testee(self) -> Child | None:
        return self.children[-1] if self.children else None

    def start_client(self) -> None:
        current = self.testee()
        if current is not None and current.returncode is None:
            raise Failure("scenario error: start client while the previous one still runs")
        command = substitute(self.client_run, recv=self.out_pipe, send=self.in_pipe)
        self.children.append(Child(command, self.workdir, f"client-{len(self.children) + 1}"))

    def kill(self, target: str, signum: int, deadline: float) -> None:
        child = self.testee()
        if target != "client" or child is None:
            raise Failure(f"scenario error: kill {target!r}: only the started client")
        child.signal(signum)
        if child.wait(max(0.0, deadline - time.monotonic())) is None:
            raise Failure(f"the client did not end after SIG{signal.Signals(signum).name}")

    def restart(self, what: str, signum: int | None, deadline: float) -> None:
        if what != "client":
            raise self.unsupported("restart server (a stopped reference server stays stopped)")
        client = self.testee()
        if client is not None and client.returncode is None:
            self.kill("client", signum or signal.SIGTERM, deadline)
        self.start_client()

    def teardown_clients(self) -> None:
        for child in self.children:
            child.finish(2.0)


class ReferenceServer(ClientTesteeSide):
    """The reference server in this process, pull API: send_message / recv_message."""

    def __init__(
        self,
        workdir: Path,
        pipe_names: tuple[str, str],
        client_run: str,
        options: dict[str, Any],
    ) -> None:
        super().__init__(workdir, pipe_names, client_run)
        from pipe_io_server import PipeIOServer  # noqa: PLC0415 (only client roles need it)

        self.server: Any = PipeIOServer(self.in_pipe, self.out_pipe, **options)
        self.started = False
        self.stopped = False

    def start(self, what: str, deadline: float) -> None:
        if what == "client":
            self.start_client()
        elif not self.started:
            self.started = True
            self.server.start()

    def stop_server(self, deadline: float) -> None:
        self.stopped = True
        self.server.stop()

    def send(self, peer: str, message: bytes, deadline: float) -> None:
        self.server.send_message(message)

    def recv(self, peer: str, deadline: float, limit: int | None = None) -> bytes | None:
        exited_at: float | None = None
        while True:
            try:
                message: bytes = self.server.recv_message(
                    timeout=min(0.1, fifo.remaining(deadline))
                )
                return message
            except TimeoutError:
                pass
            except EOFError:
                return None
            client = self.testee()
            if client is not None and client.returncode is not None:
                # Its last writes may still be on their way through the server.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 0.5:
                    return None

    def end_text(self, peer: str) -> str:
        client = self.testee()
        if self.stopped:
            return "end of stream (the server was stopped)"
        return f"nothing: the client ended ({exit_text(client.returncode if client else None)})"

    def eof_rest(self, peer: str, deadline: float) -> bytes:
        """The client must end, and nothing more may arrive."""
        rest: list[bytes] = []
        while True:
            message = self.recv(peer, deadline)
            if message is None:
                return b"".join(m + b"\n" for m in rest)
            rest.append(message)

    def diagnostics(self) -> list[str]:
        lines = super().diagnostics()
        stats = getattr(self.server, "stats", None)
        if stats is not None:
            lines.append(f"reference server stats: {stats}")
        return lines

    def teardown(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.stop()
        self.teardown_clients()


class RawServer(ClientTesteeSide):
    """The runner holds the FIFO ends itself: it can write what no real server would."""

    def __init__(self, workdir: Path, pipe_names: tuple[str, str], client_run: str) -> None:
        super().__init__(workdir, pipe_names, client_run)
        for path in (self.in_pipe, self.out_pipe):
            os.mkfifo(path, 0o600)
        self.reader: Reader | None = None
        self.writer: Writer | None = None
        self.writer_closed = False

    def start(self, what: str, deadline: float) -> None:
        if what == "client":
            self.start_client()
        elif self.reader is None:
            self.reader = fifo.open_reader(self.in_pipe, deadline)

    def _writer(self, deadline: float) -> Writer:
        if self.writer_closed:
            raise Failure("scenario error: the sending side was closed")
        if self.writer is None:
            self.writer = fifo.open_writer_waiting(self.out_pipe, deadline)
        return self.writer

    def _reader(self) -> Reader:
        if self.reader is None:
            raise Failure("scenario error: the raw server is not started")
        return self.reader

    def stop_server(self, deadline: float) -> None:
        self.close("a", "both")

    def send(self, peer: str, message: bytes, deadline: float) -> None:
        self._writer(deadline).write(message + b"\n", deadline)

    def write(self, peer: str, data: bytes, deadline: float) -> None:
        self._writer(deadline).write(data, deadline)

    def recv(self, peer: str, deadline: float, limit: int | None = None) -> bytes | None:
        return self._reader().message(deadline, limit)

    def end_text(self, peer: str) -> str:
        tail = self._reader().buffer
        extra = f", after an unterminated tail of {len(tail)} bytes" if tail else ""
        return f"end of file (the client closed its sending side{extra})"

    def eof_rest(self, peer: str, deadline: float) -> bytes:
        return self._reader().rest(deadline)

    def read_bytes(self, peer: str, size: int, deadline: float) -> bytes:
        return self._reader().read(size, deadline)

    def close(self, peer: str, sides: str) -> None:
        if sides in ("send", "both"):
            self.writer_closed = True
            if self.writer is not None:
                self.writer.close()
            else:
                # The client may be blocked opening its receiving side: meet it, then leave.
                with contextlib.suppress(OSError):
                    os.close(os.open(self.out_pipe, os.O_WRONLY | os.O_NONBLOCK))
        if sides in ("recv", "both") and self.reader is not None:
            self.reader.close()

    def teardown(self) -> None:
        self.close("a", "both")
        self.teardown_clients()


class Peer:
    """One client connection of the runner to a server under test, on raw FIFO ends."""

    def __init__(self) -> None:
        self.reader: Reader | None = None
        self.writer: Writer | None = None
        self.opening: threading.Thread | None = None  # blocking opens made in the background
        self.open_error: OSError | None = None

    def close(self, sides: str) -> None:
        if sides in ("send", "both") and self.writer is not None:
            self.writer.close()
            self.writer = None
        if sides in ("recv", "both") and self.reader is not None:
            self.reader.close()
            self.reader = None


@functools.cache
def reference_client_dir() -> Path:
    """The reference Python client, rendered once per run from the package's templates.

    That is the file clients/python holds in the repository, and the templates ship in the
    wheel, so the installed suite drives the same client.
    """
    from pipe_io_server import codegen  # noqa: PLC0415 (only server roles need it)

    folder = Path(tempfile.mkdtemp(prefix="pio-refclient-"))
    text = codegen.render("python")[PurePosixPath("pipe_io.py")]
    (folder / "pipe_io.py").write_text(text, encoding="utf-8")
    return folder


class ReferenceClientHost:
    """The reference Python client, run by conformance/refclient.py, one request at a time."""

    def __init__(self, in_pipe: str, out_pipe: str, workdir: Path) -> None:
        self.stderr_path = workdir / "reference-client.stderr"
        script = HERE / "refclient.py"
        with self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, str(script), str(reference_client_dir()), in_pipe, out_pipe],
                env=child_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        assert self.popen.stdin is not None and self.popen.stdout is not None
        os.set_blocking(self.popen.stdout.fileno(), False)
        self.requests = Writer(self.popen.stdin.fileno(), "reference client stdin")
        self.replies = Reader(self.popen.stdout.fileno(), "reference client stdout")

    def call(self, deadline: float, **request: Any) -> dict[str, Any]:
        """One request; an OSError comes back as OSError, a hang as fifo.Timeout."""
        try:
            self.requests.write(json.dumps(request).encode() + b"\n", deadline)
            line = self.replies.message(deadline)
        except (fifo.Timeout, BrokenPipeError):
            self.kill()
            raise fifo.Timeout from None
        if line is None:
            raise Failure(f"the reference client died: {file_tail(self.stderr_path)}")
        reply: dict[str, Any] = json.loads(line)
        if not reply["ok"]:
            if reply.get("errno"):
                number = getattr(errno, reply["errno"], 0)
                raise OSError(number, reply["error"])
            raise Failure(f"the reference client refused {request['op']}: {reply['error']}")
        return reply

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def close(self) -> None:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        with contextlib.suppress(OSError):
            self.popen.stdin.close()
        try:
            self.popen.wait(2.0)
        except subprocess.TimeoutExpired:
            self.kill()
        self.popen.stdout.close()


def _open_sender(in_pipe: str, who: str) -> Writer:
    try:
        return fifo.open_writer(in_pipe)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise Failure(NO_READER.format(path=in_pipe, who=who)) from None
        raise Failure(f"{who} could not open {in_pipe}: {error.strerror}") from None


class ReferenceClients(Side):
    """Plays clients (any number, named peers) against a server under test.

    Peers are the reference Python client, or raw FIFO ends for scenarios with
    `client = "raw"` (exact partial reads, half closes, non-blocking opens).
    """

    testee_kind = "server"

    def __init__(
        self,
        workdir: Path,
        pipe_names: tuple[str, str],
        server_run: str,
        stop_signal: str,
        raw: bool,
    ) -> None:
        super().__init__(workdir, pipe_names)
        self.server_run = server_run
        self.stop_signal = signal_number(stop_signal)
        self.server: Child | None = None
        self.raw = raw
        self.host: ReferenceClientHost | None = None
        self.peers: dict[str, Peer] = {}
        self.connected: set[str] = set()
        self.spawned: dict[str, Child] = {}
        self.inodes: list[int] = []  # O_PATH handles of FIFOs the runner created

    def testee(self) -> Child | None:
        return self.server

    def start(self, what: str, deadline: float) -> None:
        if what == "client":
            self.connect("a", ["send", "recv"], deadline)
        elif self.server is not None:
            raise Failure("scenario error: the server is already started")
        else:
            self.server = self._launch(deadline)

    def _launch(self, deadline: float) -> Child:
        """Start the server; wait until both FIFOs exist and it holds the read end of in_pipe."""
        command = substitute(self.server_run, **{"in": self.in_pipe, "out": self.out_pipe})
        runs = sum(1 for child in self.children if child.label.startswith("server"))
        server = Child(command, self.workdir, f"server-{runs + 1}" if runs else "server")
        self.children.append(server)
        waits: tuple[Callable[[float], None], ...] = (
            lambda until: fifo.wait_for_fifo(self.in_pipe, until),
            lambda until: fifo.wait_for_fifo(self.out_pipe, until),
            lambda until: fifo.open_writer_waiting(self.in_pipe, until).close(),
        )
        for wait in waits:
            while True:
                try:
                    wait(min(deadline, time.monotonic() + 0.05))
                    break
                except fifo.Timeout:
                    if server.returncode is not None:
                        raise Failure(
                            f"the server ended ({exit_text(server.returncode)}) before it "
                            f"created both FIFOs and opened {self.in_pipe} for reading"
                        ) from None
                    fifo.remaining(deadline)
        return server

    def create_pipes(self) -> None:
        for path in (self.in_pipe, self.out_pipe):
            os.mkfifo(path, 0o600)
            self.inodes.append(os.open(path, os.O_PATH | os.O_CLOEXEC))

    def stop_server(self, deadline: float) -> None:
        if self.server is None:
            raise Failure("scenario error: stop server before it was started")
        self.server.signal(self.stop_signal)

    def _host(self) -> ReferenceClientHost:
        if self.host is None:
            self.host = ReferenceClientHost(self.in_pipe, self.out_pipe, self.workdir)
        return self.host

    def _raw_only(self, what: str) -> Failure:
        return Failure(f'scenario error: {what} needs client = "raw" in the scenario')

    def _peer(self, name: str, deadline: float | None = None) -> Peer:
        try:
            peer = self.peers[name]
        except KeyError:
            raise Failure(f"scenario error: no connected peer {name!r}") from None
        if peer.opening is not None:
            peer.opening.join(max(0.0, (deadline or time.monotonic()) - time.monotonic()))
            if peer.opening.is_alive():
                raise Failure(
                    f"peer {name!r}: its blocking open has not returned: the server never "
                    "opened its end of the FIFO this client was waiting on"
                )
            peer.opening = None
            if peer.open_error is not None:
                error = peer.open_error
                raise Failure(f"peer {name!r}: its open failed: {error.strerror}: {error.filename}")
        return peer

    def connect(self, peer: str, order: list[str], deadline: float, how: How = PLAIN) -> None:
        if not self.raw:
            if how != PLAIN:
                raise self._raw_only("a non-blocking or background open")
            try:
                self._host().call(deadline, op="open", peer=peer, sides=order)
            except fifo.Timeout:
                raise Failure(
                    f"peer {peer!r}: the reference client's open ({' then '.join(order)}) "
                    "did not return: the server never opened its end"
                ) from None
            self.connected.add(peer)
            return
        connection = self.peers.setdefault(peer, Peer())
        if how.background:
            connection.opening = threading.Thread(
                target=self._open_blocking, args=(connection, order), daemon=True
            )
            connection.opening.start()
            return
        for side in order:
            if side == "send" and connection.writer is None:
                connection.writer = _open_sender(self.in_pipe, f"peer {peer!r}")
            elif side == "recv" and connection.reader is None:
                connection.reader = self._open_receiver(peer, deadline, how.nonblocking)

    def _open_receiver(self, peer: str, deadline: float, nonblocking: bool) -> Reader:
        try:
            if nonblocking:
                return fifo.open_reader_nonblocking(self.out_pipe)
            return fifo.open_reader_like_a_client(self.out_pipe, deadline)
        except fifo.NoWriter:
            if nonblocking:
                raise Failure(FALSE_EOF.format(path=self.out_pipe, who=f"peer {peer!r}")) from None
            raise Failure(
                f"peer {peer!r}: the server never opened {self.out_pipe} for writing, so "
                "a client opening its receiving side would block"
            ) from None

    def _open_blocking(self, connection: Peer, order: list[str]) -> None:
        """A client's plain blocking opens, as made before the server exists."""
        try:
            for side in order:
                if side == "send":
                    fd = os.open(self.in_pipe, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    os.set_blocking(fd, False)
                    connection.writer = Writer(fd, self.in_pipe)
                else:
                    fd = os.open(self.out_pipe, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    os.set_blocking(fd, False)
                    connection.reader = Reader(fd, self.out_pipe)
        except OSError as error:
            connection.open_error = error

    def _release_blocked_opens(self) -> None:
        """Meet opens still blocked, through the inodes they wait on, so their threads end."""
        stuck = [p for p in self.peers.values() if p.opening is not None and p.opening.is_alive()]
        if not stuck:
            return
        paths = [f"/proc/self/fd/{fd}" for fd in self.inodes] or [self.in_pipe, self.out_pipe]
        held = []
        for path, flags in zip(paths, (os.O_RDONLY, os.O_WRONLY)):
            with contextlib.suppress(OSError):
                held.append(os.open(path, flags | os.O_NONBLOCK))
        for peer in stuck:
            assert peer.opening is not None
            peer.opening.join(1.0)
        for fd in held:
            os.close(fd)

    def _writer(self, peer: str, deadline: float) -> Writer:
        writer = self._peer(peer, deadline).writer
        if writer is None:
            raise Failure(f"scenario error: peer {peer!r} has no sending side open")
        return writer

    def _reader(self, peer: str, deadline: float | None = None) -> Reader:
        reader = self._peer(peer, deadline).reader
        if reader is None:
            raise Failure(f"scenario error: peer {peer!r} has no receiving side open")
        return reader

    def send(self, peer: str, message: bytes, deadline: float) -> None:
        if self.raw:
            self._writer(peer, deadline).write(message + b"\n", deadline)
        else:
            data = base64.b64encode(message).decode("ascii")
            self._host().call(deadline, op="send", peer=peer, data=data)

    def write(self, peer: str, data: bytes, deadline: float) -> None:
        if not self.raw:
            raise self._raw_only("write (raw bytes)")
        self._writer(peer, deadline).write(data, deadline)

    def recv(self, peer: str, deadline: float, limit: int | None = None) -> bytes | None:
        if self.raw:
            return self._reader(peer, deadline).message(deadline, limit)
        reply = self._host().call(deadline, op="recv", peer=peer)
        return None if reply.get("eof") else base64.b64decode(reply["data"])

    def end_text(self, peer: str) -> str:
        state = exit_text(self.server.returncode if self.server else None)
        if not self.raw:
            return f"end of file (server: {state})"
        tail = self._reader(peer).buffer
        extra = f" after an unterminated tail of {len(tail)} bytes" if tail else ""
        return f"end of file{extra} (server: {state})"

    def eof_rest(self, peer: str, deadline: float) -> bytes:
        if self.raw:
            return self._reader(peer, deadline).rest(deadline)
        rest: list[bytes] = []
        while (message := self.recv(peer, deadline)) is not None:
            rest.append(message + b"\n")
        return b"".join(rest)

    def read_bytes(self, peer: str, size: int, deadline: float) -> bytes:
        if not self.raw:
            raise self._raw_only("read_bytes")
        return self._reader(peer, deadline).read(size, deadline)

    def close(self, peer: str, sides: str) -> None:
        if self.raw:
            self._peer(peer, time.monotonic() + 5).close(sides)
        elif peer in self.connected:
            self._host().call(time.monotonic() + 5, op="close", peer=peer, sides=sides)
        else:
            raise Failure(f"scenario error: no connected peer {peer!r}")

    def writers(self, plan: Writers, deadline: float) -> None:
        """Clients writing at once, each in a thread of its own with its own descriptors."""
        messages, sessions, idle, sent = plan.messages, plan.sessions, plan.idle, plan.sent
        errors: list[BaseException] = []
        start = threading.Barrier(len(messages))

        def run(number: int) -> None:
            # Each session opens in_pipe once, as a client would; with `idle`, an open and
            # close without a write goes before each session after the first.
            who = f"writer {number}"
            mine = messages[number]
            per_session = -(-len(mine) // sessions)
            try:
                start.wait(fifo.remaining(deadline))
                for first in range(0, len(mine), per_session):
                    if idle and first:
                        _open_sender(self.in_pipe, who).close()
                    writer = _open_sender(self.in_pipe, who)
                    try:
                        for message in mine[first : first + per_session]:
                            writer.write(message + b"\n", deadline)
                            sent[number] += 1
                    finally:
                        writer.close()
            except (threading.BrokenBarrierError, fifo.Timeout):
                errors.append(fifo.Timeout())
            except BrokenPipeError:
                errors.append(Failure(f"{who}: {self.in_pipe} has no reader (EPIPE)"))
            except Exception as error:  # reported as the step's failure
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(messages))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        failures = [e for e in errors if isinstance(e, Failure)]
        if failures:
            raise failures[0]
        if errors:
            raise errors[0]

    def spawn(self, peer: str, data: bytes, then: str, deadline: float) -> None:
        """A client in its own process: opens in_pipe, writes `data`, then exits or waits."""
        data_file = self.workdir / f"peer-{peer}.bin"
        data_file.write_bytes(data)
        command = " ".join(
            shlex.quote(arg)
            for arg in (sys.executable, str(HERE / "peer.py"), self.in_pipe, str(data_file), then)
        )
        child = Child(command, self.workdir, f"peer-{peer}")
        self.children.append(child)
        self.spawned[peer] = child
        while "written" not in child.stdout_tail():
            if child.returncode not in (None, 0):
                raise Failure(f"peer {peer!r} failed: {child.stderr_tail()}")
            fifo.remaining(deadline)
            time.sleep(0.01)
        if then == "exit" and child.wait(fifo.remaining(deadline)) is None:
            raise fifo.Timeout

    def restart(self, what: str, signum: int | None, deadline: float) -> None:
        """Stop or kill the server, start it again, wait until it reads in_pipe.

        The wait matters after SIGKILL: the old FIFOs are still there until the new server
        replaces them, and a client opening them in between would wait on dead ones.
        """
        if what != "server" or self.server is None:
            raise self.unsupported(f"restart {what}")
        self.server.signal(signum or self.stop_signal)
        status = self.server.wait(fifo.remaining(deadline))
        if status is None:
            raise Failure("the server did not end, so it could not be restarted")
        self.server = self._launch(deadline)

    def kill(self, target: str, signum: int, deadline: float) -> None:
        child = self.spawned.get(target)
        if child is None:
            raise Failure(f"scenario error: kill {target!r}: no spawned peer of that name")
        child.signal(signum)
        if child.wait(fifo.remaining(deadline)) is None:
            raise fifo.Timeout

    def diagnostics(self) -> list[str]:
        lines = super().diagnostics()
        if self.host is not None:
            err = file_tail(self.host.stderr_path)
            if err:
                lines.append("reference client stderr: " + err.replace("\n", "\n    "))
        return lines

    def processes(self) -> list[dict[str, str]]:
        found = super().processes()
        if self.host is not None:
            found.append(
                {
                    "label": "reference-client",
                    "command": "the reference Python client (conformance/refclient.py)",
                    "status": exit_text(self.host.popen.returncode),
                    "stderr": file_tail(self.host.stderr_path),
                }
            )
        return found

    def teardown(self) -> None:
        self._release_blocked_opens()
        for connection in self.peers.values():
            connection.close("both")
        if self.host is not None:
            self.host.close()
        for child in self.spawned.values():
            child.finish(0)
        if self.server is not None:
            self.server.signal(self.stop_signal)
            self.server.finish(3.0)
        for fd in self.inodes:
            os.close(fd)
