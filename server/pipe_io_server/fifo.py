"""FIFO paths: create, check and remove them safely, and reopen them by inode.

A Fifo holds an O_PATH descriptor taken with O_NOFOLLOW and checked with fstat, so no
later open can be diverted through a symlink or a swapped path, and the pipe can still be
opened (to wake a blocked thread) after someone deletes its path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat

# Pipes are grown to this size where the system allows, so large messages cross in fewer
# wake-ups; PIPE_BUF, the atomic write size, does not change with it.
PIPE_SIZE = 1024 * 1024
# Linux's values, for Pythons older than 3.10 whose fcntl module lacks the names.
F_SETPIPE_SZ: int = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ: int = getattr(fcntl, "F_GETPIPE_SZ", 1032)

_KINDS = {
    stat.S_IFREG: "a regular file",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a FIFO")


def _not_a_fifo(path: str, mode: int, action: str) -> FileExistsError:
    return FileExistsError(errno.EEXIST, f"{_kind(mode)} is in the way, not a FIFO; {action}", path)


def _grown(fd: int) -> int:
    with contextlib.suppress(OSError):  # EPERM past the user's pipe quota: keep the default
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    return fd


class Fifo:
    def __init__(self, path: str, *, managed: bool, permissions: int = 0o600) -> None:
        """Create the FIFO (managed) or check the one at path (not managed)."""
        self.path = path
        self.managed = managed
        if managed:
            self._make(permissions)
        self._fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            self._stat = os.fstat(self._fd)
            if not stat.S_ISFIFO(self._stat.st_mode):
                raise _not_a_fifo(path, self._stat.st_mode, "refusing to use it")
            if managed:
                # chmod through the descriptor: exact mode whatever the umask, on this very inode.
                os.chmod(self._proc_path, permissions)
        except BaseException:
            os.close(self._fd)
            raise

    def _make(self, permissions: int) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISFIFO(mode):
                raise _not_a_fifo(self.path, mode, "remove it or choose another path")
            os.unlink(self.path)
        try:
            os.mkfifo(self.path, permissions)
        except OSError as error:
            # mkfifo's own error names no path; a user needs to know which one and why.
            folder = os.path.dirname(self.path) or "."
            cause = error.strerror or str(error)
            if isinstance(error, FileNotFoundError):
                cause += f" (the folder {folder} does not exist)"
            raise type(error)(error.errno, f"cannot create the FIFO: {cause}", self.path) from None

    @property
    def _proc_path(self) -> str:
        return f"/proc/self/fd/{self._fd}"

    def open_read(self) -> int:
        """A non-blocking read end; never waits for a writer."""
        return _grown(os.open(self._proc_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))

    def open_write(self) -> int:
        """A write end; blocks until some reader has the FIFO open."""
        return _grown(os.open(self._proc_path, os.O_WRONLY | os.O_CLOEXEC))

    def close(self) -> None:
        """Release the FIFO; a managed one is unlinked if its path still names it."""
        if self._fd < 0:
            return
        if self.managed:
            try:
                now = os.lstat(self.path)
            except FileNotFoundError:
                pass
            else:
                if (now.st_dev, now.st_ino) == (self._stat.st_dev, self._stat.st_ino):
                    os.unlink(self.path)
        os.close(self._fd)
        self._fd = -1
