"""FIFO paths: create, check, reuse and remove them safely, and reopen them by inode.

A Fifo holds an O_PATH descriptor taken with O_NOFOLLOW and checked with fstat, so no
later open can be diverted through a symlink or a swapped path, and the pipe can still be
opened (to wake a blocked thread) after someone deletes its path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import pwd
import stat
import threading

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
_renewals = itertools.count()


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a FIFO")


def _not_a_fifo(path: str, mode: int, action: str) -> FileExistsError:
    return FileExistsError(errno.EEXIST, f"{_kind(mode)} is in the way, not a FIFO; {action}", path)


def _owner(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _grown(fd: int) -> int:
    with contextlib.suppress(OSError):  # EPERM past the user's pipe quota: keep the default
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    return fd


def _mkfifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except OSError as error:
        # mkfifo's own error names no path; a user needs to know which one and why.
        folder = os.path.dirname(path) or "."
        cause = error.strerror or str(error)
        if isinstance(error, FileNotFoundError):
            cause += f" (the folder {folder} does not exist)"
        raise type(error)(error.errno, f"cannot create the FIFO: {cause}", path) from None


class Fifo:
    def __init__(
        self, path: str, *, managed: bool, permissions: int = 0o600, inbound: bool = False
    ) -> None:
        """Create or reuse the FIFO (managed), or check the one at path (not managed).

        The path is made absolute here, so a later chdir() cannot lose the FIFO. An inbound
        FIFO (in_pipe) that some server already reads is refused.
        """
        self.path = os.path.abspath(path)
        self.managed = managed
        self._permissions = permissions
        self._lock = threading.Lock()  # renew() against close()
        self._fd = -1
        self.created = False  # made here, not found at the path
        self._fd = self._claim() if managed else self._open_path(self.path)
        try:
            self.stat = os.fstat(self._fd)
            if inbound:
                self._refuse_if_served()
        except BaseException:
            os.close(self._fd)
            raise

    def _claim(self) -> int:
        """A FIFO of ours at the path is reused, so a client already waiting in open() on it
        is served; anything else in the way is refused and left untouched."""
        try:
            found = os.lstat(self.path)
        except FileNotFoundError:
            _mkfifo(self.path)
            self.created = True
        else:
            if not stat.S_ISFIFO(found.st_mode):
                raise _not_a_fifo(self.path, found.st_mode, "remove it or choose another path")
            if found.st_uid != os.geteuid():
                raise PermissionError(
                    errno.EPERM,
                    f"the FIFO there belongs to {_owner(found.st_uid)}; refusing to take it over",
                    self.path,
                )
        fd = self._open_path(self.path)
        try:
            # chmod through the descriptor: exact mode whatever the umask, on this very inode.
            os.chmod(f"/proc/self/fd/{fd}", self._permissions)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_path(self, path: str) -> int:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISFIFO(mode):
            os.close(fd)
            raise _not_a_fifo(path, mode, "refusing to use it")
        return fd

    def _refuse_if_served(self) -> None:
        """Only a server reads the FIFO clients write: a non-blocking write-open finds one.

        (Not for out_pipe: there a reader is a client, which such an open would let in.)
        """
        try:
            probe = os.open(self._proc_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            if error.errno == errno.ENXIO:
                return  # no reader: at most a stale FIFO of a server that died
            raise
        os.close(probe)
        raise FileExistsError(errno.EEXIST, "another server is serving this FIFO", self.path)

    @property
    def _proc_path(self) -> str:
        return f"/proc/self/fd/{self._fd}"

    def open_read(self) -> int:
        """A non-blocking read end; never waits for a writer."""
        return _grown(os.open(self._proc_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))

    def open_write(self) -> int:
        """A write end; blocks until some reader has the FIFO open."""
        return _grown(os.open(self._proc_path, os.O_WRONLY | os.O_CLOEXEC))

    def renew(self) -> bool:
        """Put a fresh FIFO at the path, keeping the current one for whoever has it open.

        Called when a reader connects: a reader that opens the path later gets the new FIFO
        and waits there for its turn, and can never reach what the current reader leaves
        behind. False when the path no longer names our FIFO (someone replaced or removed it)
        or the fresh one cannot be made; the session then shares the pipe, as unmanaged ones do.
        """
        folder, name = os.path.split(self.path)
        fresh = os.path.join(folder, f".{name}.{os.getpid()}.{next(_renewals)}")
        with self._lock:
            if self._fd < 0 or not self._names_ours():
                return False
            try:
                os.mkfifo(fresh, 0o600)
                fd = self._open_path(fresh)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(fresh)
                return False
            try:
                os.chmod(f"/proc/self/fd/{fd}", self._permissions)
                os.rename(fresh, self.path)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(fresh)
                return False
            os.close(self._fd)
            self._fd, self.stat = fd, os.fstat(fd)
            return True

    def release_waiting_readers(self) -> None:
        """A reader blocked in open() for reading gets in, then sees end of file at once."""
        with contextlib.suppress(OSError):
            os.close(os.open(self._proc_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))

    def _names_ours(self) -> bool:
        try:
            now = os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (self.stat.st_dev, self.stat.st_ino)

    def close(self, keep_found: bool = False) -> None:
        """Release the FIFO; a managed one is unlinked if its path still names it (unless
        `keep_found` and it was found there, not made here: a refused start removes no more
        than it made)."""
        with self._lock:
            if self._fd < 0:
                return
            if self.managed and self._names_ours() and not (keep_found and not self.created):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            os.close(self._fd)
            self._fd = -1
