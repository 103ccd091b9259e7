"""The reference Python client (clients/python/pipe_io.py) in a process of its own.

python refclient.py CLIENT_DIR IN_PIPE OUT_PIPE  (CLIENT_DIR holds pipe_io.py)
The runner drives it with one JSON request per line on stdin and reads one JSON reply per
line on stdout. Its calls block as a user's would; the runner bounds each with a deadline
and kills this process if the server under test never answers.

Requests: {"op": "open", "peer": P, "sides": ["send", "recv"]}, {"op": "send", "peer": P,
"data": BASE64}, {"op": "recv", "peer": P}, {"op": "close", "peer": P, "sides": S}.
Replies: {"ok": true} (recv adds "data": BASE64 or "eof": true), or {"ok": false,
"error": TEXT, "errno": NAME}.
"""

from __future__ import annotations

import base64
import errno
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipe_io import PipeIO


class Host:
    def __init__(self, in_pipe: str, out_pipe: str) -> None:
        self.in_pipe = in_pipe
        self.out_pipe = out_pipe
        # peer -> side -> connection; one PipeIO serves both sides when opened send first.
        self.peers: dict[str, dict[str, PipeIO]] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        operation = getattr(self, f"op_{request['op']}", None)
        if operation is None:
            return {"ok": False, "error": f"unknown op {request['op']!r}"}
        reply: dict[str, Any] = operation(self.peers.setdefault(request["peer"], {}), request)
        return reply

    def op_open(self, sides: dict[str, PipeIO], request: dict[str, Any]) -> dict[str, Any]:
        from pipe_io import PipeIO  # noqa: PLC0415 (found in CLIENT_DIR, on the path by now)

        order = request["sides"]
        if order == ["send", "recv"]:
            both = PipeIO(self.out_pipe, self.in_pipe)
            sides.update(send=both, recv=both)
        else:
            for side in order:
                sides[side] = (
                    PipeIO(None, self.in_pipe) if side == "send" else PipeIO(self.out_pipe)
                )
        return {"ok": True}

    def op_send(self, sides: dict[str, PipeIO], request: dict[str, Any]) -> dict[str, Any]:
        sides["send"].send(base64.b64decode(request["data"]))
        return {"ok": True}

    def op_recv(self, sides: dict[str, PipeIO], request: dict[str, Any]) -> dict[str, Any]:
        message = sides["recv"].recv()
        if message is None:
            return {"ok": True, "eof": True}
        return {"ok": True, "data": base64.b64encode(message).decode("ascii")}

    def op_close(self, sides: dict[str, PipeIO], request: dict[str, Any]) -> dict[str, Any]:
        if request["sides"] == "both":
            for each in {id(c): c for c in sides.values()}.values():
                each.close()
            sides.clear()
            return {"ok": True}
        side = request["sides"]
        connection = sides.get(side)
        if connection is not None:
            if any(c is connection for s, c in sides.items() if s != side):
                return {"ok": False, "error": "a two-sided PipeIO cannot close one side"}
            sides.pop(side).close()
        return {"ok": True}


def main(argv: list[str]) -> int:
    client_dir, in_pipe, out_pipe = argv
    sys.path.insert(0, client_dir)
    host = Host(in_pipe, out_pipe)
    for line in sys.stdin.buffer:
        try:
            reply = host.handle(json.loads(line))
        except OSError as error:
            name = errno.errorcode.get(error.errno or 0, str(error.errno))
            reply = {"ok": False, "error": str(error), "errno": name}
        except (KeyError, ValueError) as error:
            reply = {"ok": False, "error": repr(error)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
