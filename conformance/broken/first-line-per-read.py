"""BROKEN ON PURPOSE: takes each read() as one message and keeps its first line only.

`os.read(fd, 4096).split(b"\\n")[0]` looks right while messages arrive one per read: a
message in pieces comes back cut, and a read that holds several loses all but the first.
"""

import os
import sys

recv = os.open(sys.argv[1], os.O_RDONLY)
send = os.open(sys.argv[2], os.O_WRONLY)
while data := os.read(recv, 4096):
    os.write(send, data.split(b"\n")[0] + b"\n")
