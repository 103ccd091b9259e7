"""Resources a server gives back or waits for: memory after large messages, descriptors.

glibc keeps freed heap memory for reuse, and its mmap threshold rises after a large block is
freed, so after a burst of multi-MiB messages an idle server would keep tens of MiB it no
longer uses. malloc_trim(0) returns the free pages; it is called when a server thread goes
idle after at least TRIM_AFTER bytes of large messages went through.

Running out of descriptors (or kernel memory) is transient: a Shortage logs it once, waits
with a backoff, and logs when it is over, instead of letting a server thread die of it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("pipe_io_server")

TRIM_AFTER = 1024 * 1024
QUIET_MS = 100
# Out of descriptors (per process, system-wide) or of kernel memory: worth waiting out.
SHORTAGES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

# glibc's mallopt parameter for the number of malloc arenas. malloc_trim() gives back the
# free top of the main arena's heap but not of the arenas glibc makes for other threads, where
# the server's threads would leave their freed large messages; with one arena, every freed
# message is where a trim reaches it. Large blocks stay in the heap (glibc's own rising mmap
# threshold), so a stream of large messages reuses memory instead of mapping and faulting in
# each message anew.
M_ARENA_MAX = -8
_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name) if _libc_name else None
_malloc_trim: Callable[[int], int] | None = getattr(_libc, "malloc_trim", None)  # glibc only
_mallopt: Callable[[int, int], int] | None = getattr(_libc, "mallopt", None)


def one_arena() -> None:
    """Keep every thread's blocks in the main arena (a no-op without glibc); the server's
    threads allocate under the interpreter's lock, so they do not contend for it."""
    if _mallopt is not None:
        _mallopt(M_ARENA_MAX, 1)


_traffic = 0


def note(size: int) -> None:
    """Note that `size` bytes of messages went through (a hint: races are harmless)."""
    global _traffic
    _traffic += size


def quiet_ms() -> int | None:
    """How long a thread about to wait may wait before it should trim; None: for ever."""
    return QUIET_MS if _traffic >= TRIM_AFTER else None


def trim() -> None:
    global _traffic
    _traffic = 0
    if _malloc_trim is not None:
        _malloc_trim(0)


class Shortage:
    """A resource that ran out: logged once when it starts and once when it ends; the
    retries in between wait with a backoff that an event (a stop) interrupts."""

    FIRST_WAIT = 0.01
    LONGEST_WAIT = 0.5

    def __init__(
        self, what: str, stop: threading.Event, longest_wait: float = LONGEST_WAIT
    ) -> None:
        self._longest = longest_wait
        self._what = what
        self._stop = stop
        self._since: float | None = None
        self._wait = self.FIRST_WAIT

    def wait(self, error: OSError) -> bool:
        """Log the shortage if it is new, then wait; False if stopping."""
        return not self._stop.wait(self.delay(error))

    def delay(self, error: OSError) -> float:
        """Log the shortage if it is new; how long to wait before the next try (for a caller
        that cannot block, an event loop). Raises `error` if it is not a shortage."""
        if error.errno not in SHORTAGES:
            raise error
        if self._since is None:
            self._since = time.monotonic()
            log.warning("%s: %s; retrying until it is back", self._what, error.strerror)
        wait, self._wait = self._wait, min(self._wait * 2, self._longest)
        return wait

    def over(self) -> None:
        if self._since is not None:
            log.warning("%s: back after %.1f s", self._what, time.monotonic() - self._since)
            self._since = None
            self._wait = self.FIRST_WAIT
