"""A minimal correct echo client: the control that the broken clients are compared with."""

from __future__ import annotations

import sys


def main(recv_path: str, send_path: str) -> int:
    with open(recv_path, "rb", buffering=0) as recv, open(send_path, "wb", buffering=0) as send:
        pending = bytearray()
        while chunk := recv.read(1 << 16):
            start = len(pending)
            pending += chunk
            end = pending.rfind(b"\n", start)
            if end < 0:
                continue
            try:
                send.write(bytes(pending[: end + 1]))
            except BrokenPipeError:
                return 0
            del pending[: end + 1]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
