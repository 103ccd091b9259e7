"""BROKEN ON PURPOSE: reads in text mode, whose universal newlines turn CR into a line end.

`for line in open(path)` is the natural Python; it splits "a\rb" into two messages.
"""

import sys

with (
    open(sys.argv[1], encoding="utf-8", errors="surrogateescape") as recv,
    open(sys.argv[2], "w", encoding="utf-8", errors="surrogateescape", newline="") as send,
):
    for line in recv:
        if line.endswith("\n"):
            send.write(line)
            send.flush()
