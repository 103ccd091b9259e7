"""The 1.0.x `pipe` module: `Pipe(path)` creates and removes one FIFO, nothing else."""

from __future__ import annotations

import contextlib
import os
import stat

from .fifo import Fifo, _not_a_fifo
from .server import DEFAULT_PERMISSIONS

__all__ = ["DEFAULT_PERMISSIONS", "Pipe"]


class Pipe:
    """A FIFO path. Unlike 1.0.x, it never deletes what is not a FIFO."""

    def __init__(self, path: str) -> None:
        self.path = path

    def recreate(self, permissions: int = DEFAULT_PERMISSIONS) -> None:
        """Replace the FIFO at path (or create one) with mode exactly `permissions`.

        Raises FileExistsError, leaving it in place, when something else is at path.
        """
        fifo = Fifo(self.path, managed=True, permissions=permissions)
        fifo.managed = False  # the FIFO stays; only the handle is released
        fifo.close()

    def remove(self) -> None:
        """Remove the FIFO at path, if there is one; refuse anything else."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISFIFO(mode):
            raise _not_a_fifo(self.path, mode, "refusing to remove it")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
