"""A client process for the tests, driven by its arguments; data travels as hex.

send IN HEX [hold]      write the bytes with one write(); with hold, say ready and wait to be killed
read OUT COUNT          read exactly COUNT bytes (or up to end of file), print them as hex
lines OUT COUNT         read COUNT whole lines, print each as hex on its own line
writers IN ID COUNT     write COUNT tagged messages of up to PIPE_BUF bytes, one write() each
"""

from __future__ import annotations

import os
import sys
import time
import zlib


def main(action: str, path: str, *rest: str) -> None:
    if action == "send":
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, bytes.fromhex(rest[0]))
        if rest[1:] == ("hold",):
            print("ready", flush=True)
            time.sleep(60)
        os.close(fd)
    elif action == "read":
        fd = os.open(path, os.O_RDONLY)
        want, got = int(rest[0]), b""
        while len(got) < want and (chunk := os.read(fd, want - len(got))):
            got += chunk
        print(got.hex())
    elif action == "lines":
        # One byte at a time, so nothing past the last wanted line leaves the pipe.
        fd = os.open(path, os.O_RDONLY)
        data, lines = bytearray(), int(rest[0])
        while lines and (chunk := os.read(fd, 1)):
            data += chunk
            lines -= chunk == b"\n"
        for line in bytes(data).split(b"\n")[: int(rest[0])]:
            print(line.hex())
    elif action == "writers":
        fd = os.open(path, os.O_WRONLY)
        writer, count = rest[0], int(rest[1])
        for seq in range(count):
            body = os.urandom(1 + seq * 37 % 3000).hex().encode()[:4000]
            head = f"{writer}:{seq}:{zlib.crc32(body)}:".encode()
            os.write(fd, head + body + b"\n")
        os.close(fd)
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(*sys.argv[1:])
