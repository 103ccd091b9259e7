"""A signal handler runs on the main thread between two bytecodes of whatever it was doing,
for instance inside Event.wait() with the event's lock held. A handler that takes a lock
(Event.set() does) then waits for ever for its own thread: a server under test that ignores
SIGTERM once in a few hundred runs. Every handler the project's scripts install only sets a
flag, raises, or ends the process."""

from __future__ import annotations

import ast
from pathlib import Path

from conformance.tests.conftest import ROOT

FOLDERS = ["conformance", "soak", "bench", "server/pipe_io_server", "tools"]
# Calls that wait for a lock or a condition when the handler's own thread may hold it.
LOCKING = {"set", "clear", "wait", "put", "get", "acquire", "notify", "notify_all", "join"}


def _handlers(tree: ast.Module) -> list[tuple[int, ast.AST]]:
    """The handlers given to signal.signal() in a module: lambdas, or functions it defines."""
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    found: list[tuple[int, ast.AST]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "signal"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "signal"
            and len(node.args) == 2
        ):
            continue
        handler = node.args[1]
        if isinstance(handler, ast.Lambda):
            found.append((node.lineno, handler))
        elif isinstance(handler, ast.Name) and handler.id in functions:
            found.append((node.lineno, functions[handler.id]))
        elif isinstance(handler, ast.Attribute) and handler.attr in functions:
            found.append((node.lineno, functions[handler.attr]))
    return found


def _locking_calls(handler: ast.AST) -> list[str]:
    return [
        node.func.attr
        for node in ast.walk(handler)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOCKING
    ]


def _scripts() -> list[Path]:
    return [path for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]


def test_the_check_finds_a_handler_that_takes_a_lock() -> None:
    tree = ast.parse(
        "import signal, threading\n"
        "stop = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())\n"
    )
    [(line, handler)] = _handlers(tree)
    assert line == 3 and _locking_calls(handler) == ["set"]


def test_no_signal_handler_takes_a_lock() -> None:
    offenders = []
    seen = 0
    for path in _scripts():
        for line, handler in _handlers(ast.parse(path.read_text(), str(path))):
            seen += 1
            calls = _locking_calls(handler)
            if calls:
                offenders.append(f"{path.relative_to(ROOT)}:{line} calls {', '.join(calls)}")
    assert seen >= 4, "the handlers were not found: the check itself is broken"
    assert not offenders, "signal handlers that may wait for their own thread: " + "; ".join(
        offenders
    )
