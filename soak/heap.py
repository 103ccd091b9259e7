"""The live heap of the process: what it has allocated and not freed, both allocators counted.

Unlike RSS, this does not count what an allocator keeps after a peak. CPython takes small
objects (up to 512 bytes: every small message, the list that queues it) from arenas it maps
itself, which glibc's mallinfo2 never sees; its own statistics count them.
"""

from __future__ import annotations

import ctypes
import re


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_ALLOCATED = re.compile(rb"bytes in allocated blocks\s*=\s*([\d,]+)")


def _malloc() -> int:
    """glibc's allocated bytes, in its heaps and in blocks it mapped."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _pymalloc() -> int:
    """CPython's small-object allocator, in bytes of allocated blocks.

    Its statistics go to a C stream: one in memory (open_memstream), so no descriptor is
    needed, even when the process has run out of them.
    """
    libc = ctypes.CDLL(None)
    libc.open_memstream.restype = ctypes.c_void_p
    libc.open_memstream.argtypes = [
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    stats = ctypes.pythonapi._PyObject_DebugMallocStats
    stats.argtypes = [ctypes.c_void_p]
    text, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(text), ctypes.byref(size))
    if not stream:
        raise OSError("open_memstream failed")
    stats(stream)
    libc.fclose(stream)
    report = ctypes.string_at(text, size.value)
    libc.free(text)
    found = _ALLOCATED.search(report)
    return int(found.group(1).replace(b",", b"")) if found else 0


def live_heap() -> int:
    """Bytes allocated and not freed, or -1 where glibc or CPython's statistics are missing."""
    try:
        return _malloc() + _pymalloc()
    except (OSError, AttributeError):
        return -1
