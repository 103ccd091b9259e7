"""A server in a process of its own, driven line by line on stdin, for what a test cannot do
to its own process: lower the fd limit, exhaust it, measure resident memory.

    python server_proc.py IN OUT MODE [max_backlog]
        MODE: echo | pull (never pulls) | aio (an echo on the asyncio face)

Commands (one per line), each answered by one line on stdout:
    rss            "RSS_KIB HWM_KIB" (VmRSS and VmHWM)
    exhaust        open /dev/null until EMFILE; answers how many were opened
    release        close them again
    stop           stop(); answers "SECONDS FIFOS_LEFT THREADS_LEFT WAITED"
    stats          the server's stats as a dict
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import threading
import time
from typing import Callable

from pipe_io_server import PipeIOServer, Stats
from pipe_io_server.aio import AsyncPipeIOServer, ServerStopped


def status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def limit_descriptors() -> None:
    """Headroom for the server's own descriptors, so that `exhaust` is what hits the limit."""
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 64, used + 64))


def obey(pipes: tuple[str, str], stats: Stats, stop: Callable[[], bool]) -> None:
    """Answer the commands on stdin; `stop` stops the server and says whether it stopped."""
    hoard: list[int] = []
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "rss":
            print(status_kib("VmRSS"), status_kib("VmHWM"), flush=True)
        elif command == "exhaust":
            try:
                while True:
                    hoard.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                pass
            print(len(hoard), flush=True)
        elif command == "release":
            while hoard:
                os.close(hoard.pop())
            print("released", flush=True)
        elif command == "stop":
            started = time.monotonic()
            stopped = stop()
            seconds = time.monotonic() - started
            left = sum(os.path.exists(path) for path in pipes)
            threads = sum(t.name.startswith("pipe_io_server") for t in threading.enumerate())
            print(f"{seconds:.3f} {left} {threads} {stopped}", flush=True)
        elif command == "stats":
            print(vars(stats), flush=True)


def serve_async(in_pipe: str, out_pipe: str, options: dict[str, int]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = AsyncPipeIOServer(in_pipe, out_pipe, **options)  # type: ignore[arg-type]

        def stop() -> bool:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
            return True

        async with server:
            limit_descriptors()
            commands = threading.Thread(
                target=obey, args=((in_pipe, out_pipe), server.stats, stop), daemon=True
            )
            commands.start()
            async for message in server:
                with contextlib.suppress(ServerStopped):
                    await server.send(message)
        while commands.is_alive():  # until stdin ends: a stopped server still answers
            await asyncio.sleep(0.05)

    asyncio.run(main())


def main(in_pipe: str, out_pipe: str, mode: str, max_backlog: str = "") -> None:
    options = {"max_backlog": int(max_backlog)} if max_backlog else {}
    if mode == "aio":
        serve_async(in_pipe, out_pipe, options)
        return
    server = PipeIOServer(in_pipe, out_pipe, **options)  # type: ignore[arg-type]
    if mode == "echo":
        server.handle_message = server.send_message  # type: ignore[method-assign]
    limit_descriptors()
    server.start()

    def stop() -> bool:
        server.stop()
        return server.wait(1)

    obey((in_pipe, out_pipe), server.stats, stop)


if __name__ == "__main__":
    main(*sys.argv[1:])
