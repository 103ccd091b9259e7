"""One test (or a few) per numbered guarantee of docs/PROTOCOL.md, with real FIFOs and processes."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import stat
import subprocess
import sys
import zlib

import pytest
from conftest import (
    EchoServer,
    RawClient,
    eventually,
    finish,
    hit_and_run_at_the_next_reopen,
    in_thread,
    peer,
    returns_within,
    wait_ready,
)
from pipe_io_server import BacklogFull, PipeIOServer, PipeReaderServer, PipeWriterServer


# 1. Framing
def test_every_byte_but_newline_is_echoed_untouched(echo: EchoServer) -> None:
    client = RawClient(echo.in_pipe, echo.out_pipe)
    every = bytes(b for b in range(256) if b != 10)
    sent = [every, b"", b"\r", b"a\rb\r", b"\0\0", b"\xff\xfe invalid utf-8", b"", b" %s -n \t"]
    client.send(b"".join(m + b"\n" for m in sent))
    assert [client.recv() for _ in sent] == sent
    client.close()


# 2. Open order
@pytest.mark.parametrize("order", ["out-then-in", "in-then-out"])
def test_either_open_order(echo: EchoServer, order: str) -> None:
    if order == "out-then-in":
        reader = peer("lines", echo.out_pipe, "1")
        sender = peer("send", echo.in_pipe, b"hi\n".hex())
    else:
        sender = peer("send", echo.in_pipe, b"hi\n".hex())
        reader = peer("lines", echo.out_pipe, "1")
    finish(sender)
    assert finish(reader) == b"hi".hex().encode() + b"\n"


def test_send_only_client(pull: PipeIOServer) -> None:
    finish(peer("send", pull.in_pipe, b"one\ntwo\n".hex()))
    assert [pull.recv_message(timeout=10), pull.recv_message(timeout=10)] == [b"one", b"two"]


def test_receive_only_client(pull: PipeIOServer) -> None:
    pull.send_message(b"for you")
    assert finish(peer("lines", pull.out_pipe, "1")) == b"for you".hex().encode() + b"\n"


def test_client_opening_before_the_server_starts(pipes: tuple[str, str]) -> None:
    server = EchoServer(*pipes)
    opened = in_thread(lambda: RawClient(*pipes).close())
    assert opened.is_alive()  # blocked in open() until the server starts
    server.start()
    opened.join(10)
    assert not opened.is_alive()
    server.stop()


# 3. Clients come and go
def test_many_sequential_clients(echo: EchoServer) -> None:
    for round_ in range(30):
        client = RawClient(echo.in_pipe, echo.out_pipe)
        client.send(b"round %d\n" % round_)
        assert client.recv() == b"round %d" % round_
        client.close()


# 4. Whole messages: handled, in order, once
def test_whole_messages_in_order_once_whatever_the_write_sizes(pull: PipeIOServer) -> None:
    messages = [b"m%05d" % i * (i % 7) for i in range(2000)]
    stream = b"".join(m + b"\n" for m in messages)
    client = RawClient(pull.in_pipe)
    position = 0
    for size in [1, 2, 3, 5, 8, 13, 4096, 65536, 100_000] * 100:
        client.send(stream[position : position + size])
        position += size
    client.close()
    assert [pull.recv_message(timeout=10) for _ in messages] == messages
    with pytest.raises(TimeoutError):
        pull.recv_message(timeout=0.2)
    assert pull.stats.received == len(messages)


# 5. Unterminated tails are dropped, never glued
@pytest.mark.parametrize("how", ["sigkill", "close"])
def test_tail_of_a_departed_client_is_dropped(pull: PipeIOServer, how: str) -> None:
    data = b"whole\npart of a message".hex()
    if how == "sigkill":
        client = peer("send", pull.in_pipe, data, "hold")
        wait_ready(client)
        assert pull.recv_message(timeout=10) == b"whole"
        client.send_signal(signal.SIGKILL)
        client.wait(10)
    else:
        finish(peer("send", pull.in_pipe, data))
        assert pull.recv_message(timeout=10) == b"whole"
    finish(peer("send", pull.in_pipe, b"next\n".hex()))
    assert pull.recv_message(timeout=10) == b"next"
    assert pull.stats.tails_discarded == 1


def test_tail_drop_is_logged(pull: PipeIOServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipe_io_server"):
        finish(peer("send", pull.in_pipe, b"cut".hex()))
        finish(peer("send", pull.in_pipe, b"after\n".hex()))
        assert pull.recv_message(timeout=10) == b"after"
    assert "unterminated tail of 3 bytes" in caplog.text


# 6. Messages wait for a reader; a reader leaving midway costs the next one nothing
def test_queued_messages_wait_for_the_next_reader(pull: PipeIOServer) -> None:
    for i in range(100):
        pull.send_message(b"queued %d" % i)
    lines = finish(peer("lines", pull.out_pipe, "100")).split()
    assert [bytes.fromhex(h.decode()) for h in lines] == [b"queued %d" % i for i in range(100)]


def test_reader_leaving_mid_message_gets_it_redelivered_whole(pull: PipeIOServer) -> None:
    big = bytes(range(256)).replace(b"\n", b"") * 1000  # larger than the pipe
    pull.send_message(b"first")
    pull.send_message(big)
    pull.send_message(b"last")
    out = finish(peer("read", pull.out_pipe, "1000"))
    taken = bytes.fromhex(out.decode())
    assert taken.startswith(b"first\n") and len(taken) == 1000
    # A reader opening before the server saw the last one go would share its pipe: wait.
    assert eventually(lambda: pull.stats.redelivered >= 1)
    lines = finish(peer("lines", pull.out_pipe, "2")).split()
    assert [bytes.fromhex(h.decode()) for h in lines] == [big, b"last"]


def test_reader_killed_mid_message(pull: PipeIOServer) -> None:
    pull.send_message(b"x" * 500_000)
    reader = peer("read", pull.out_pipe, "300000")
    finish(reader)
    assert eventually(lambda: pull.stats.redelivered == 1)
    lines = finish(peer("lines", pull.out_pipe, "1")).split()
    assert bytes.fromhex(lines[0].decode()) == b"x" * 500_000


# 7. Size limit
def test_oversized_message_is_dropped_and_the_stream_resynchronises(pipes: tuple[str, str]) -> None:
    with PipeIOServer(*pipes, max_message_size=100) as server:
        client = RawClient(server.in_pipe)
        client.send(b"a" * 100 + b"\n" + b"b" * 5000 + b"\n" + b"ok\n")
        assert server.recv_message(timeout=10) == b"a" * 100
        assert server.recv_message(timeout=10) == b"ok"
        assert server.stats.oversized_discarded == 1
        client.close()


# 8. A raising handler is reported, not fatal
def test_handler_errors_are_logged_hooked_and_survived(
    pipes: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[bytes, str]] = []

    class Fragile(PipeIOServer):
        def handle_message(self, message: bytes) -> None:
            if message == b"boom":
                raise KeyError("boom")
            self.send_message(message)

        def on_handler_error(self, message: bytes, error: Exception) -> None:
            seen.append((message, repr(error)))

    with caplog.at_level(logging.ERROR, logger="pipe_io_server"), Fragile(*pipes) as server:
        client = RawClient(server.in_pipe, server.out_pipe)
        client.send(b"boom\nstill here\n")
        assert client.recv() == b"still here"
        client.close()
    assert seen == [(b"boom", "KeyError('boom')")]
    assert server.stats.handler_errors == 1
    assert "KeyError" in caplog.text


# 9. stop() from any state
def test_stop_with_no_client_ever(pipes: tuple[str, str]) -> None:
    server = EchoServer(*pipes)
    server.start()
    assert returns_within(server.stop, 2)
    assert returns_within(server.stop, 2)
    assert server.wait(0)


def test_stop_with_a_client_holding_both_pipes_and_a_full_pipe(echo: EchoServer) -> None:
    client = RawClient(echo.in_pipe, echo.out_pipe)
    for _ in range(50):
        echo.send_message(b"z" * 100_000)  # far more than the pipe holds; nobody reads
    client.send(b"unread\n")
    assert returns_within(echo.stop, 2)
    client.close()


def test_stop_after_the_pipes_were_deleted_under_a_client(echo: EchoServer) -> None:
    client = RawClient(echo.in_pipe, echo.out_pipe)
    os.unlink(echo.in_pipe)
    os.unlink(echo.out_pipe)
    client.send(b"still served\n")
    assert client.recv() == b"still served"
    assert returns_within(echo.stop, 2)
    client.close()


def test_blocked_reader_sees_end_of_file_at_stop(echo: EchoServer) -> None:
    client = RawClient(echo.in_pipe, echo.out_pipe)
    result: list[bytes | None] = []
    reading = in_thread(lambda: result.append(client.recv()))
    echo.stop()
    reading.join(5)
    assert result == [None]
    client.close()


def test_stop_from_inside_the_handler(pipes: tuple[str, str]) -> None:
    server = PipeIOServer(*pipes)
    server.handle_message = lambda message: server.stop()  # type: ignore[method-assign]
    server.start()
    finish(peer("send", server.in_pipe, b"quit\n".hex()))
    assert server.wait(10)
    assert not os.path.exists(server.in_pipe)


def test_stop_before_start_and_no_restart(pipes: tuple[str, str]) -> None:
    server = EchoServer(*pipes)
    server.stop()
    assert not os.path.exists(pipes[0])
    with pytest.raises(RuntimeError, match="stopped"):
        server.start()


def test_recv_message_after_stop(pull: PipeIOServer) -> None:
    finish(peer("send", pull.in_pipe, b"kept\n".hex()))
    assert pull.recv_message(timeout=10) == b"kept"
    pull.stop()
    with pytest.raises(EOFError):
        pull.recv_message(timeout=1)
    with pytest.raises(RuntimeError, match="stopped"):
        pull.send_message(b"late")


# 10. Bounded backlog
def test_backlog_limit_raises_instead_of_growing(pipes: tuple[str, str]) -> None:
    with PipeIOServer(*pipes, max_backlog=1000, send_timeout=0.1) as server:
        accepted = []
        with pytest.raises(BacklogFull, match="1000 bytes"):
            for i in range(1000):
                message = b"%04d" % i * 25
                server.send_message(message)
                accepted.append(message)
        assert 0 < len(accepted) < 1000
        lines = finish(peer("lines", server.out_pipe, str(len(accepted)))).split()
        assert [bytes.fromhex(h.decode()) for h in lines] == accepted


def test_full_backlog_does_not_stop_the_reading_side(pipes: tuple[str, str]) -> None:
    with EchoServer(*pipes, max_backlog=10, send_timeout=0.05) as server:
        client = RawClient(server.in_pipe)
        for i in range(20):
            client.send(b"%02d-padding\n" % i)  # no reader on out_pipe: replies pile up
        client.close()
        assert eventually(lambda: server.stats.received == 20)
        assert eventually(lambda: server.stats.handler_errors == 19)


# 11. Concurrent writers of messages up to PIPE_BUF
def test_concurrent_writers_arrive_whole(pull: PipeIOServer) -> None:
    writers = [peer("writers", pull.in_pipe, str(w), "300") for w in range(4)]
    received = [pull.recv_message(timeout=20) for _ in range(4 * 300)]
    for writer in writers:
        finish(writer)
    last = {str(w): -1 for w in range(4)}
    for message in received:
        writer, seq, crc, body = message.split(b":", 3)
        assert zlib.crc32(body) == int(crc)
        assert int(seq) == last[writer.decode()] + 1
        last[writer.decode()] = int(seq)
    assert pull.stats.tails_discarded == 0


# Reader-only and writer-only servers
def test_reader_and_writer_servers(pipes: tuple[str, str]) -> None:
    with PipeReaderServer(pipes[0]) as reader, PipeWriterServer(pipes[1]) as writer:
        finish(peer("send", reader.in_pipe, b"in\n".hex()))
        assert reader.recv_message(timeout=10) == b"in"
        writer.send_message("out é")
        assert (
            finish(peer("lines", writer.out_pipe, "1")).strip() == "out é".encode().hex().encode()
        )
        assert not hasattr(reader, "send_message")
    assert not os.path.exists(pipes[0]) and not os.path.exists(pipes[1])


def test_send_message_refuses_newlines(echo: EchoServer) -> None:
    with pytest.raises(ValueError, match="newline"):
        echo.send_message(b"two\nlines")
    assert stat.S_ISFIFO(os.stat(echo.out_pipe).st_mode)


def test_a_handler_cannot_send_a_newline_whatever_it_received(pipes: tuple[str, str]) -> None:
    """The received message is sent on unscanned; anything made from it is still checked."""
    refused: list[str] = []
    with PipeIOServer(*pipes) as server:

        def handle(message: bytes) -> None:
            server.send_message(message)
            for bad in (message + b"\n", message.replace(b"-", b"\n")):
                try:
                    server.send_message(bad)
                except ValueError as error:
                    refused.append(str(error))

        server.handle_message = handle  # type: ignore[method-assign]
        reader = peer("lines", server.out_pipe, "2")
        finish(peer("send", server.in_pipe, b"one-a\ntwo-b\n".hex()))
        lines = [bytes.fromhex(line) for line in finish(reader).decode().split()]
    assert lines == [b"one-a", b"two-b"]
    assert len(refused) == 4 and all("newline" in text for text in refused)


def test_writer_that_comes_and_goes_while_the_server_reopens(pull: PipeIOServer) -> None:
    """A tail written in the instant the server reopens in_pipe is still dropped, not glued."""
    assert pull._reader is not None
    hit_and_run_at_the_next_reopen(pull._reader)
    finish(peer("send", pull.in_pipe, b"first\n".hex()))
    assert pull.recv_message(timeout=10) == b"first"
    assert eventually(lambda: pull.stats.tails_discarded == 1)
    finish(peer("send", pull.in_pipe, b"next\n".hex()))
    assert pull.recv_message(timeout=10) == b"next"


@pytest.mark.timeout(30)
def test_back_to_back_readers_never_meet_a_false_end_of_file(pipes: tuple[str, str]) -> None:
    """A reader that opens the instant the last one left still gets a live stream."""
    server = subprocess.Popen([sys.executable, "-m", "pipe_io_server", "serve", *pipes])
    try:
        assert eventually(lambda: all(os.path.exists(p) for p in pipes))
        for session in range(2000):
            client = RawClient(*pipes)
            client.send(b"m%d\n" % session)
            assert client.recv() == b"m%d" % session, f"session {session}"
            client.close()
    finally:
        server.terminate()
        server.wait(10)


def test_replies_batched_in_one_read_respect_the_backlog_limit(pipes: tuple[str, str]) -> None:
    """Guarantee 10 on the batched path: replies to one read are collected, still bounded."""
    with EchoServer(*pipes, max_backlog=10, send_timeout=0.05) as server:
        client = RawClient(server.in_pipe)
        client.send(b"".join(b"%02d-padding\n" % i for i in range(20)))  # one write, one read
        client.close()
        assert eventually(lambda: server.stats.received == 20)
        assert eventually(lambda: server.stats.handler_errors == 19)


def test_a_large_reply_and_a_small_one_leave_in_order(pipes: tuple[str, str]) -> None:
    """Guarantee 3 across the two write paths: the writer thread's and the caller's own."""
    with PipeIOServer(*pipes) as server:
        large = b"L" * (1 << 20)
        server.handle_message = lambda m: [  # type: ignore[method-assign]
            server.send_message(large),
            server.send_message(b"small"),
        ]
        reader = peer("lines", server.out_pipe, "2")
        finish(peer("send", server.in_pipe, b"go\n".hex()))
        lines = [bytes.fromhex(line) for line in finish(reader).decode().split()]
    assert lines == [large, b"small"]


# send_message takes bytes-like objects and str only
@pytest.mark.parametrize("message", [b"b", bytearray(b"ba"), memoryview(b"mv"), "s\u00e9"])
def test_send_message_takes_bytes_like_and_str(pull: PipeIOServer, message: object) -> None:
    pull.send_message(message)  # type: ignore[arg-type]
    expected = message.encode() if isinstance(message, str) else bytes(message)  # type: ignore[call-overload]
    assert finish(peer("lines", pull.out_pipe, "1")) == expected.hex().encode() + b"\n"


@pytest.mark.parametrize("message", [3, True, [104, 105], None, 2.5, {"a": 1}])
def test_send_message_refuses_other_types_naming_them(pull: PipeIOServer, message: object) -> None:
    with pytest.raises(TypeError, match=type(message).__name__):
        pull.send_message(message)  # type: ignore[arg-type]
    assert pull.stats.sent == 0


def test_a_reply_the_pipe_takes_in_part_is_finished_by_the_writer_thread(
    pipes: tuple[str, str],
) -> None:
    """A lone reply written by its sender into an almost full pipe: the rest follows whole."""
    with PipeIOServer(*pipes) as server:
        reader = os.open(server.out_pipe, os.O_RDONLY)
        capacity = fcntl.fcntl(reader, 1032)  # F_GETPIPE_SZ
        server.send_message(b"f" * (capacity - 10))  # nearly fills the pipe
        assert server.flush(10)
        server.send_message(b"tail" * 2000)  # over PIPE_BUF: written alone, in part
        got = b""
        while got.count(b"\n") < 2:
            got += os.read(reader, 1 << 20)
        os.close(reader)
    assert got == b"f" * (capacity - 10) + b"\n" + b"tail" * 2000 + b"\n"
