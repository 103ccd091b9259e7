"""A client in a process of its own, for faults only a process can commit (dying mid-message).

python peer.py IN_PIPE DATA_FILE then
Opens IN_PIPE for writing, writes the bytes of DATA_FILE, prints "written", then exits
(then = exit) or waits to be killed (then = wait; it gives up after a minute).
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    in_pipe, data_file, then = argv
    with open(data_file, "rb") as file:
        data = file.read()
    fd = os.open(in_pipe, os.O_WRONLY | os.O_NOFOLLOW)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    print("written", flush=True)
    if then == "wait":
        time.sleep(60)
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
