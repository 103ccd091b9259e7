"""Command line: `pipe-io-server serve` runs a server, `pipe-io-server client` copies a client."""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import NoReturn

from . import __version__, codegen
from .bridge import Bridge
from .framing import DEFAULT_MAX_MESSAGE_SIZE
from .server import PipeIOServer

PROG = "pipe-io-server"


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
        "line it prints is sent back; the server ends when CMD ends, with its exit status",
    )
    serve.add_argument(
        "--permissions",
        type=lambda text: int(text, 8),
        default=0o600,
        metavar="MODE",
        help="octal mode of the FIFOs it creates (default 600)",
    )
    serve.add_argument(
        "--no-manage",
        dest="manage_pipes",
        action="store_false",
        help="use FIFOs that already exist and leave them in place on exit",
    )
    serve.add_argument(
        "--max-message-size",
        type=int,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="longer incoming messages are discarded and reported (default 64 MiB)",
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
    return parser


def _client(args: argparse.Namespace) -> int:
    options = codegen.Options(args.java_package, args.c_prefix, args.js_format)
    dest = args.dest or Path(f"pipe-io-{args.language}")
    for path in codegen.write(args.language, dest, options, force=args.force):
        print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=f"{PROG}: %(levelname)s: %(message)s",
    )
    done = threading.Event()
    interrupted = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    options = {
        "permissions": args.permissions,
        "manage_pipes": args.manage_pipes,
        "max_message_size": args.max_message_size,
    }
    bridge = None
    if args.command_line is not None:
        argv = shlex.split(args.command_line)
        if not argv:
            raise ValueError("--exec needs a command")
        try:
            bridge = Bridge(argv)
        except OSError as error:
            raise OSError(error.errno, f"cannot run {argv[0]}: {error.strerror}") from None
    try:
        if bridge:
            server = bridge.server(args.in_pipe, args.out_pipe, **options)
        else:
            server = PipeIOServer(args.in_pipe, args.out_pipe, **options)
            server.handle_message = server.send_message  # type: ignore[method-assign]
        server.start()
    except BaseException:
        if bridge:
            bridge.kill()
        raise
    if bridge:
        exec_bridge = bridge

        def watch() -> None:
            exec_bridge.wait()
            done.set()

        threading.Thread(target=watch, daemon=True).start()
    done.wait()
    status = bridge.finish(server, bool(interrupted)) if bridge else 0
    server.stop()
    return status


def main(argv: list[str] | None = None) -> int:
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
