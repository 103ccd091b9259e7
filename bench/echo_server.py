"""Echo server for the benchmarks: `python echo_server.py [--async] IN OUT`.

The same file runs under this project's venv and under the legacy venv, where the same
import name is pipe-io-server 1.0.3, so both are measured with the same subclass. With
--async it echoes through this project's asyncio face instead (`async for`, `await send`).
It prints "ready VERSION" once the server has started and stops cleanly on SIGTERM or SIGINT.
"""

import signal
import sys
from importlib.metadata import version

from pipe_io_server import PipeIOServer

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class EchoServer(PipeIOServer):
    def handle_message(self, message):  # type: ignore[no-untyped-def]
        self.send_message(message)


def threaded(in_pipe: str, out_pipe: str) -> None:
    # Blocked before the server's threads exist, so they inherit the mask and only
    # sigwait below ever takes these signals.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server = EchoServer(in_pipe, out_pipe)
    server.start()
    print("ready", version("pipe-io-server"), flush=True)
    signal.sigwait(STOP_SIGNALS)
    server.stop()


def asynchronous(in_pipe: str, out_pipe: str) -> None:
    import asyncio  # noqa: PLC0415 (1.0.3's venv runs this file without the face)
    import contextlib  # noqa: PLC0415

    from pipe_io_server.aio import AsyncPipeIOServer, ServerStopped  # noqa: PLC0415

    async def echo() -> None:
        async with AsyncPipeIOServer(in_pipe, out_pipe) as server:
            loop = asyncio.get_running_loop()
            stopping = []
            for signum in STOP_SIGNALS:
                loop.add_signal_handler(
                    signum, lambda: stopping.append(asyncio.ensure_future(server.stop()))
                )
            print("ready", version("pipe-io-server"), flush=True)
            with contextlib.suppress(ServerStopped):
                async for message in server:
                    await server.send(message)

    asyncio.run(echo())


def main() -> None:
    if sys.argv[1] == "--async":
        asynchronous(*sys.argv[2:4])
    else:
        threaded(*sys.argv[1:3])


if __name__ == "__main__":
    main()
