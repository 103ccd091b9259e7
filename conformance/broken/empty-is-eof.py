"""BROKEN ON PURPOSE: stops at the first empty message, taking it for end of stream."""

import sys

with open(sys.argv[1], "rb") as recv, open(sys.argv[2], "wb") as send:
    while line := recv.readline().rstrip(b"\n"):
        send.write(line + b"\n")
        send.flush()
