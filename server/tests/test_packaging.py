"""What a user installs carries the licence: the sdist and the wheel, built as a release is."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from pipe_io_server import __version__

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "pipe_io_server"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The sdist first, then the wheel from the unpacked sdist: what installs from the index.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.timeout(600)
def test_the_wheel_ships_the_licence_and_every_module(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"pipe_io_server-{__version__}.dist-info"
        assert archive.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = archive.read(f"{info}/METADATA").decode().splitlines()
    assert "License-Expression: MIT" in metadata
    shipped = {f"pipe_io_server/{path.name}" for path in PACKAGE.glob("*.py")}
    assert shipped - names == set()
    assert "pipe_io_server/py.typed" in names
    assert any(name.startswith("pipe_io_server/templates/python/") for name in names)


@pytest.mark.timeout(600)
def test_the_sdist_ships_the_licence(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        licence = archive.extractfile(f"pipe_io_server-{__version__}/LICENSE")
        assert licence is not None
        assert licence.read() == (ROOT / "LICENSE").read_bytes()
