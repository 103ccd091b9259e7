"""pipe-io-server 1.0.3's Python client as an echo testee: python echo_client.py RECV SEND.

Run with the Python that has 1.0.3 installed; its client ships inside the package
(pipe_io_server/clients/python/pipe_io.py) and is used as its example does.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pipe_io_server


def main(recv_path: str, send_path: str) -> int:
    sys.path.insert(0, str(Path(pipe_io_server.__file__).parent / "clients" / "python"))
    pipe_io = importlib.import_module("pipe_io")  # 1.0.3's, in the folder just added
    with pipe_io.PipeIO(recv_path, send_path) as pipeio:
        pipeio.reader.message_handler = pipeio.writer.send_message
        pipeio.reader.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
