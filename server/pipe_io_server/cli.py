"""Command line: `pipe-io-server serve` runs a server, `pipe-io-server client` copies a client."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from . import __version__, codegen
from .bridge import Bridge
from .framing import DEFAULT_MAX_MESSAGE_SIZE
from .server import DEFAULT_MAX_BACKLOG, DEFAULT_SEND_TIMEOUT, PipeIOServer

PROG = "pipe-io-server"
log = logging.getLogger("pipe_io_server")


class _Parser(argparse.ArgumentParser):
    """One line per error, so scripts and people see the cause at once."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A message queue over two named pipes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser(
        "serve",
        help="run a server",
        description=(
            "Run a server on two FIFOs. Clients write messages (one per line) into IN and "
            "read the server's messages from OUT. Without --exec it echoes every message."
        ),
    )
    serve.add_argument("in_pipe", metavar="IN", help="FIFO the clients write and the server reads")
    serve.add_argument("out_pipe", metavar="OUT", help="FIFO the server writes and clients read")
    serve.add_argument(
        "--exec",
        dest="command_line",
        metavar="CMD",
        help="run CMD and bridge it: each message becomes a line on its standard input, each "
        "line it prints is sent back; the server ends when CMD ends, with its exit status. CMD "
        "is split into words like a shell word list but not run by a shell (write "
        "\"sh -c '...'\" for pipes and redirections), and must flush each line it prints "
        '("stdbuf -oL tr a-z A-Z" or "python3 -u", not a plain "tr", which holds '
        "its output back)",
    )
    serve.add_argument(
        "--permissions",
        type=_mode,
        default=0o600,
        metavar="MODE",
        help="octal mode of the FIFOs, from 0 to 777 (default 600)",
    )
    serve.add_argument(
        "--no-manage",
        dest="manage_pipes",
        action="store_false",
        help="use FIFOs that already exist and leave them in place on exit",
    )
    serve.add_argument(
        "--max-message-size",
        type=_size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="longer messages, from clients or from CMD, are discarded and reported "
        "(default 64 MiB)",
    )
    serve.add_argument(
        "--send-timeout",
        type=_seconds,
        default=DEFAULT_SEND_TIMEOUT,
        metavar="SECONDS",
        help="how long a message may wait for room in a full queue: the outbound backlog, "
        "or CMD's input when CMD stops reading; then it is dropped and reported (default 5)",
    )
    serve.add_argument(
        "--ready-file",
        type=Path,
        metavar="PATH",
        help="create PATH once both FIFOs exist and the server serves (remove it at exit): "
        "a script waits for the file instead of racing the server",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log every event")

    client = commands.add_parser(
        "client",
        help="write a copy-paste client",
        description="Write the files of a client (library, echo example, README, tests).",
    )
    client.add_argument("language", choices=codegen.LANGUAGES)
    client.add_argument(
        "--dest", type=Path, help="folder to write into (default ./pipe-io-LANGUAGE)"
    )
    client.add_argument("--force", action="store_true", help="overwrite files that differ")
    client.add_argument(
        "--java-package",
        default=codegen.Options.java_package,
        metavar="NAME",
        help="java: the Java package of the classes, written under its folder "
        "(default %(default)s)",
    )
    client.add_argument(
        "--c-prefix",
        default=codegen.Options.c_prefix,
        metavar="PREFIX",
        help="c: the prefix of every C function and type in the header, in capitals for its "
        "macros (default %(default)s)",
    )
    client.add_argument(
        "--js-format",
        choices=codegen.JS_FORMATS,
        default=codegen.Options.js_format,
        help="js: the JavaScript module format, esm (.mjs files, import) or cjs (.cjs files, "
        "require) (default %(default)s)",
    )

    commands.add_parser(
        "conformance",
        add_help=False,
        help="check a client or a server against the protocol (see conformance --help)",
    )
    return parser


def _client(args: argparse.Namespace) -> int:
    options = codegen.Options(args.java_package, args.c_prefix, args.js_format)
    dest = args.dest or Path(f"pipe-io-{args.language}")
    for path in codegen.write(args.language, dest, options, force=args.force):
        print(path)
    return 0


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: give an octal mode from 0 to 777, such as 600 or 660"
        )
    return mode


def _size(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give a number of bytes")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: give a number of seconds")
    return seconds


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=f"{PROG}: %(levelname)s: %(message)s",
    )
    options: dict[str, Any] = {
        "permissions": args.permissions,
        "manage_pipes": args.manage_pipes,
        "max_message_size": args.max_message_size,
    }
    ended = threading.Event()  # a stop signal, CMD's exit, or a bridge that cannot go on
    bridge = None
    if args.command_line is not None:
        argv = shlex.split(args.command_line)
        if not argv:
            raise ValueError("--exec needs a command")
        try:
            bridge = Bridge(
                argv,
                max_backlog=DEFAULT_MAX_BACKLOG,
                send_timeout=args.send_timeout,
                max_message_size=args.max_message_size,
                on_failure=ended.set,
            )
        except FileNotFoundError:
            raise ValueError(f"cannot run {argv[0]}: command not found") from None
        except PermissionError:
            raise ValueError(f"cannot run {argv[0]}: permission denied") from None
    try:
        if bridge:
            server = bridge.server(args.in_pipe, args.out_pipe, **options)
        else:
            server = PipeIOServer(
                args.in_pipe, args.out_pipe, send_timeout=args.send_timeout, **options
            )
            server.handle_message = server.send_message  # type: ignore[method-assign]
    except BaseException:
        if bridge:
            bridge.stop()
        raise
    return _Session(server, bridge, args.ready_file, args.manage_pipes, ended).run()


class _Session:
    """A served session from start to exit: signals, readiness, and CMD's end.

    The first SIGINT, SIGTERM or SIGHUP stops the server within a second; a second one ends
    the process at once, taking CMD's process group and the FIFOs with it.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    # The signal handler only sets a flag (it may not take a lock: it runs on the main thread
    # inside whatever that thread was doing, Event.wait() with the event's lock held included),
    # so the main thread looks at the flag this often.
    SIGNAL_POLL = 0.05
    # After CMD exits: how long its output may still come, and wait for a reader.
    OUTPUT_GRACE = 1.0
    DRAIN_TIMEOUT = 10.0

    def __init__(
        self,
        server: PipeIOServer,
        bridge: Bridge | None,
        ready: Path | None,
        managed: bool,
        ended: threading.Event,
    ) -> None:
        self.server = server
        self.bridge = bridge
        self.ready = ready
        self.managed = managed
        self.signalled = False
        self.ended = ended

    def run(self) -> int:
        for signum in self.SIGNALS:
            signal.signal(signum, self._on_signal)
        # A server that stops by itself (stats.error says why) ends the session too.
        self.server.on_stop = self.ended.set  # type: ignore[method-assign]
        try:
            self.server.start()
            if self.bridge:
                self.bridge.start()
                threading.Thread(target=self._watch, daemon=True).start()
            self._announce()
            while not self.ended.wait(self.SIGNAL_POLL) and not self.signalled:
                pass
            if self.bridge and not self.signalled and not self.bridge.failure:
                self._finish_output()
        finally:
            self.server.stop()
            if self.bridge:
                self.bridge.stop()
            if self.ready:
                with contextlib.suppress(FileNotFoundError):
                    self.ready.unlink()
        if self.server.stats.error or (self.bridge and self.bridge.failure):
            return 1
        if self.bridge and not self.signalled:
            return self.bridge.status()
        return 0

    def _announce(self) -> None:
        print(
            f"{PROG}: serving: clients write {self.server.in_pipe} and read {self.server.out_pipe}",
            file=sys.stderr,
            flush=True,
        )
        if self.ready:
            partial = self.ready.with_name(f".{self.ready.name}.{os.getpid()}")
            partial.write_text(f"{self.server.in_pipe}\n{self.server.out_pipe}\n")
            partial.replace(self.ready)  # appears whole, never half written

    def _watch(self) -> None:
        assert self.bridge is not None
        self.bridge.process.wait()
        self.ended.set()

    def _finish_output(self) -> None:
        """CMD exited: send what it printed last, unless a signal or the limits cut it short."""
        assert self.bridge is not None
        deadline = time.monotonic() + self.OUTPUT_GRACE
        while not self.bridge.output_done.is_set() and time.monotonic() < deadline:
            if self.signalled:
                return
            time.sleep(0.02)
        deadline = time.monotonic() + self.DRAIN_TIMEOUT
        while not self.server.flush(0.05):
            if self.signalled:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "no reader took the last messages of %s in %s s",
                    self.bridge.name,
                    self.DRAIN_TIMEOUT,
                )
                return

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled:
            self._abort(signum)
        self.signalled = True

    def _abort(self, signum: int) -> NoReturn:
        if self.bridge:
            self.bridge.kill_group(signal.SIGKILL)
        # No lock may be taken here (the interrupted code may hold it): the FIFOs go by path.
        for path in (self.server.in_pipe, self.server.out_pipe) if self.managed else ():
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(os.lstat(path).st_mode):
                    os.unlink(path)
        os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["conformance"]:
        # The suite parses its own options; it ships in this package (see pyproject.toml).
        suite = importlib.import_module(".conformance.cli", __package__)
        return int(suite.main(argv[1:], prog=f"{PROG} conformance"))
    args = _parser().parse_args(argv)
    try:
        return _client(args) if args.command == "client" else _serve(args)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        print(f"{PROG}: error: {_describe(error)}", file=sys.stderr)
        return 1


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
