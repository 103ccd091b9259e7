"""Code written for pipe-io-server 1.0.3 imports and calls this package unchanged.

The names and signatures are read from 1.0.3's own source (the sdist that `make legacy-suite`
downloads into build/legacy), loaded under another package name so it cannot shadow ours.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import stat
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RawClient
from pipe_io_server import PipeReaderServer, PipeWriterServer
from pipe_io_server.pipe import Pipe

ROOT = Path(__file__).resolve().parents[2]
LEGACY_SRC = ROOT / "build" / "legacy" / "pipe_io_server-1.0.3" / "pipe_io_server"
LEGACY = "legacy_pipe_io_server"

# The modules of 1.0.3 that its users import: the package and the modules its names live in.
PUBLIC_MODULES = (
    "",
    "pipe_io_server",
    "pipe_reader_server",
    "pipe_writer_server",
    "terminate_process_on_failure",
    "pipe",
)
# 1.0.3's machinery (its threads and queue) and its own tests: nothing a user imported.
INTERNAL_MODULES = {
    "deque",
    "pipe_io_thread",
    "pipe_reader_thread",
    "pipe_writer_thread",
    "test_pipe_io_server",
}


@pytest.fixture(scope="module")
def legacy() -> Iterator[types.ModuleType]:
    if not (LEGACY_SRC / "__init__.py").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{LEGACY_SRC} is missing: `make unit` downloads it")
        pytest.skip(f"{LEGACY_SRC} is missing: `make build/legacy/test_legacy.py` downloads it")
    spec = importlib.util.spec_from_file_location(
        LEGACY, LEGACY_SRC / "__init__.py", submodule_search_locations=[str(LEGACY_SRC)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[LEGACY] = package
    try:
        spec.loader.exec_module(package)
        yield package
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] == LEGACY]:
            del sys.modules[name]


def _dotted(package: str, module: str) -> str:
    return f"{package}.{module}" if module else package


def _source(module: str) -> Path:
    return LEGACY_SRC / (f"{module}.py" if module else "__init__.py")


def public_names(module: str) -> list[str]:
    """What a 1.0.3 module defines or imports from another public module, read from its source.

    Names it imports from the standard library or from 1.0.3's internals are not its API.
    """
    names = []
    for node in ast.parse(_source(module).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module in PUBLIC_MODULES:
                names += [alias.asname or alias.name for alias in node.names]
            else:
                assert node.module in INTERNAL_MODULES, node.module
    return [name for name in names if not name.startswith("_")]


POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _differs(old: inspect.Parameter, new: inspect.Parameter) -> bool:
    return old.default is not old.empty and new.default != old.default


def accepts(old: inspect.Signature, new: inspect.Signature, *, names: bool = True) -> list[str]:
    """Why a call that was valid against `old` may fail against `new` (empty: none).

    names=False for methods only the interpreter calls, always positionally (`__exit__`).
    """
    problems = []
    old_params, new_params = list(old.parameters.values()), list(new.parameters.values())
    old_positional = [p for p in old_params if p.kind in POSITIONAL]
    new_positional = [p for p in new_params if p.kind in POSITIONAL]
    for index, param in enumerate(old_positional):
        ours = new_positional[index] if index < len(new_positional) else None
        if ours is None or (names and ours.name != param.name) or ours.kind != param.kind:
            problems.append(f"parameter {index} is {ours}, was {param}")
        elif _differs(param, ours):
            problems.append(f"{param.name} defaults to {ours.default!r}, was {param.default!r}")
    new_kinds = {p.kind for p in new_params}
    for param in old_params:
        if param.kind in VARIADIC and param.kind not in new_kinds:
            problems.append(f"takes no {param}")
        elif param.kind == param.KEYWORD_ONLY:
            ours = new.parameters.get(param.name)
            if ours is None or ours.kind in (*VARIADIC, param.POSITIONAL_ONLY):
                problems.append(f"keyword {param.name} is gone")
            elif _differs(param, ours):
                problems.append(f"{param.name} defaults to {ours.default!r}")
    added = new_positional[len(old_positional) :] + [
        p for p in new_params if p.kind == p.KEYWORD_ONLY and p.name not in old.parameters
    ]
    problems += [f"new parameter {p.name} has no default" for p in added if p.default is p.empty]
    return problems


def class_api(cls: type) -> dict[str, Any]:
    """The public members of a 1.0.3 class, from 1.0.3's classes and threading.Thread."""
    members: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        if base.__module__.partition(".")[0] == LEGACY or base is threading.Thread:
            for name, value in vars(base).items():
                if name in ("__init__", "__enter__", "__exit__") or not name.startswith("_"):
                    members[name] = value
    return members


def instance(cls: type, tmp_path: Path) -> Any:
    """An instance made with paths in tmp_path for every required parameter."""
    required = [
        name
        for name, param in inspect.signature(cls).parameters.items()
        if param.default is param.empty and param.kind == param.POSITIONAL_OR_KEYWORD
    ]
    return cls(**{name: str(tmp_path / f"{cls.__module__}-{name}") for name in required})


def dispose(obj: Any) -> None:
    if hasattr(obj, "stop"):
        obj.stop()


def test_every_module_of_the_legacy_layout_is_classified(legacy: types.ModuleType) -> None:
    on_disk = {path.stem for path in LEGACY_SRC.glob("*.py")} - {"__init__"}
    assert on_disk == (set(PUBLIC_MODULES) - {""}) | INTERNAL_MODULES


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_exists_with_the_same_signature(
    legacy: types.ModuleType, module: str, tmp_path: Path
) -> None:
    old_module = importlib.import_module(_dotted(LEGACY, module))
    new_module = importlib.import_module(_dotted("pipe_io_server", module))
    names = public_names(module)
    assert names, f"no public names read from {_source(module)}"
    problems = []
    for name in names:
        old = getattr(old_module, name)
        new = getattr(new_module, name, None)
        where = f"{_dotted('pipe_io_server', module)}.{name}"
        if new is None:
            problems.append(f"{where} is missing")
        elif inspect.isclass(old):
            problems += [f"{where}{problem}" for problem in class_problems(old, new, tmp_path)]
        elif callable(old):
            if isinstance(new, types.ModuleType) or not callable(new):
                problems.append(f"{where} is {new!r}, not callable")
            else:
                old_sig, new_sig = inspect.signature(old), inspect.signature(new)
                problems += [f"{where}: {p}" for p in accepts(old_sig, new_sig)]
        elif new != old:
            problems.append(f"{where} is {new!r}, was {old!r}")
    assert not problems, "\n".join(problems)


def class_problems(old: type, new: Any, tmp_path: Path) -> list[str]:
    if not inspect.isclass(new):
        return [f" is {new!r}, not a class"]
    problems = []
    old_obj, new_obj = instance(old, tmp_path), instance(new, tmp_path)
    try:
        api = class_api(old)
        api.update({name: None for name in vars(old_obj) if not name.startswith("_")})
        for name, value in api.items():
            member = inspect.getattr_static(new, name, None)
            if isinstance(value, (property, types.GetSetDescriptorType)) or value is None:
                if not hasattr(new_obj, name):
                    problems.append(f".{name} is missing")
                elif isinstance(value, property) and value.fset is not None:
                    try:
                        setattr(new_obj, name, getattr(new_obj, name))
                    except AttributeError as error:
                        problems.append(f".{name} cannot be set: {error}")
            elif member is None or not callable(getattr(new, name)):
                problems.append(f".{name}() is missing")
            else:
                old_sig = inspect.signature(getattr(old, name))
                new_sig = inspect.signature(getattr(new, name))
                dunder = name.startswith("__") and name != "__init__"
                problems += [f".{name}: {p}" for p in accepts(old_sig, new_sig, names=not dunder)]
    finally:
        dispose(new_obj)
        dispose(old_obj)
    return problems


class LegacyShaped(PipeReaderServer, PipeWriterServer):
    """A two-way server built the way 1.0.3 built its own PipeIOServer."""

    def __init__(self, in_pipe: str, out_pipe: str, permissions: int = 0o600) -> None:
        super().__init__(  # type: ignore[call-arg]
            in_pipe=in_pipe, out_pipe=out_pipe, permissions=permissions, manage_pipes=True
        )

    def handle_message(self, message: bytes) -> None:
        self.send_message(message.upper())


def test_a_server_composed_as_in_1_0_3_echoes(tmp_path: Path) -> None:
    in_pipe, out_pipe = str(tmp_path / "in"), str(tmp_path / "out")
    with LegacyShaped(in_pipe, out_pipe, permissions=0o640) as server:
        assert (server.in_pipe, server.out_pipe) == (in_pipe, out_pipe)
        assert stat.S_IMODE(os.stat(out_pipe).st_mode) == 0o640
        client = RawClient(in_pipe, out_pipe)
        try:
            client.send(b"hello\n")
            assert client.recv() == b"HELLO"
        finally:
            client.close()
    assert not os.path.exists(in_pipe) and not os.path.exists(out_pipe)


def test_importing_the_submodule_keeps_the_decorator_a_function() -> None:
    """`import pipe_io_server.terminate_process_on_failure` must not shadow the function."""
    script = (
        "import pipe_io_server.terminate_process_on_failure\n"
        "from pipe_io_server import terminate_process_on_failure as decorator\n"
        "assert decorator(lambda: 7)() == 7, decorator\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()


def test_pipe_recreate_makes_a_fifo_with_the_exact_mode_whatever_the_umask(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p"
    old_umask = os.umask(0o077)
    try:
        Pipe(str(path)).recreate(0o660)
        first = os.stat(path)
        Pipe(str(path)).recreate(0o604)
    finally:
        os.umask(old_umask)
    second = os.stat(path)
    assert stat.S_ISFIFO(second.st_mode) and stat.S_IMODE(second.st_mode) == 0o604
    assert stat.S_IMODE(first.st_mode) == 0o660
    Pipe(str(path)).remove()
    assert not path.exists()
    Pipe(str(path)).remove()  # nothing there: nothing to do


def test_pipe_never_deletes_what_is_not_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="regular file"):
        Pipe(str(path)).recreate(0o600)
    with pytest.raises(FileExistsError, match="regular file"):
        Pipe(str(path)).remove()
    assert path.read_text() == "keep me"


def test_the_signature_check_catches_each_kind_of_break() -> None:
    def old(path: str, mode: int = 0o600, **kwargs: object) -> None: ...
    def renamed(where: str, mode: int = 0o600, **kwargs: object) -> None: ...
    def default(path: str, mode: int = 0o644, **kwargs: object) -> None: ...
    def closed(path: str, mode: int = 0o600) -> None: ...
    def required(path: str, mode: int = 0o600, *, size: int, **kwargs: object) -> None: ...
    def extended(path: str, mode: int = 0o600, size: int = 1, **kwargs: object) -> None: ...

    def check(new: Any) -> list[str]:
        return accepts(inspect.signature(old), inspect.signature(new))

    assert check(renamed) and check(default) and check(closed) and check(required)
    assert check(extended) == []
    assert accepts(inspect.signature(old), inspect.signature(renamed), names=False) == []
