"""The CMD of the stall episode: `stall_cmd.py N PIDFILE` echoes N lines, then stops reading.

It starts a child of its own first, in its process group, which the server must end with it.
Both give up after a minute, so that a server that leaves them behind leaks them for no longer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

LIFETIME = 60


def main() -> None:
    count, pidfile = int(sys.argv[1]), sys.argv[2]
    child = subprocess.Popen(["sleep", str(LIFETIME)])
    with open(pidfile + ".part", "w") as out:
        out.write(f"{os.getpid()} {child.pid}\n")
    os.replace(pidfile + ".part", pidfile)
    for _ in range(count):
        line = sys.stdin.buffer.readline()
        if not line:
            break
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    time.sleep(LIFETIME)


if __name__ == "__main__":
    main()
