"""The core's hooks for a consumer or a sender that must not block (the asyncio face): an
intake taken a read at a time that wakes its waiters when more arrives, a send that reports
a full backlog instead of waiting, and a batch its owner leaves to the writer thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import finish, in_thread, peer
from pipe_io_server import BacklogFull, PipeIOServer
from pipe_io_server.aio import _Intake
from pipe_io_server.backlog import BATCH_BYTES, Backlog
from pipe_io_server.writer import ServerStopped, Writer

# The asyncio face's intake


def test_the_intake_hands_out_each_read_whole_and_in_order() -> None:
    async def main() -> None:
        intake = _Intake(None, on_error=lambda error: None)
        assert intake.take() is None
        waiter = intake.waiter()
        intake.put([b"a", b"b"])
        intake.put([b"c"])
        assert waiter.done()
        first, second = intake.take(), intake.take()
        assert first is not None and list(first) == [b"a", b"b"]
        assert second is not None and list(second) == [b"c"]
        assert intake.take() is None

    asyncio.run(main())


def test_the_intake_wakes_its_waiters_at_close_then_ends_once_drained() -> None:
    async def main() -> None:
        intake = _Intake(None, on_error=lambda error: None)
        withdrawn, kept = intake.waiter(), intake.waiter()
        intake.forget(withdrawn)
        intake.put([b"last"])
        intake.close()
        assert kept.done() and not withdrawn.done()
        group = intake.take()
        assert group is not None and list(group) == [b"last"]  # what came before the close
        with pytest.raises(EOFError):
            intake.take()
        assert intake.drain() == 0

    asyncio.run(main())


# Writer


def writer_of(server: PipeIOServer) -> Writer:
    assert server._writer is not None
    return server._writer


def test_send_without_waiting_reports_a_full_backlog_at_once(pipes: tuple[str, str]) -> None:
    with PipeIOServer(*pipes, max_backlog=1000, send_timeout=5) as server:
        writer = writer_of(server)
        assert writer.send(b"a" * 900, False)
        started = time.monotonic()
        assert not writer.send(b"refused", False)
        assert time.monotonic() - started < 1, "send waited although told not to"
        assert server.stats.sent == 1
        lines = finish(peer("lines", server.out_pipe, "1")).split()
        assert [bytes.fromhex(h.decode()) for h in lines] == [b"a" * 900]


def test_a_callable_is_called_once_room_frees_up(pipes: tuple[str, str]) -> None:
    with PipeIOServer(*pipes, max_backlog=1000) as server:
        writer = writer_of(server)
        room = threading.Event()
        assert writer.send(b"a" * 900, False)
        assert not writer.send(b"b" * 900, room.set)
        assert not room.wait(0.2)
        reader = peer("lines", server.out_pipe, "2")
        assert room.wait(10), "nobody was told that room freed up"
        assert writer.send(b"b" * 900, False)
        lines = finish(reader).split()
        assert [bytes.fromhex(h.decode()) for h in lines] == [b"a" * 900, b"b" * 900]


def test_a_callable_is_called_at_stop_and_forget_withdraws(pipes: tuple[str, str]) -> None:
    server = PipeIOServer(*pipes, max_backlog=100)
    server.start()
    writer = writer_of(server)
    calls: list[str] = []

    def withdrawn() -> None:
        calls.append("withdrawn")

    writer.send(b"x" * 100, False)
    assert not writer.send(b"y", withdrawn)
    assert not writer.send(b"z", lambda: calls.append("stopped"))
    writer.forget(withdrawn)
    server.stop()
    assert calls == ["stopped"]
    with pytest.raises(ServerStopped):
        writer.send(b"late", False)


def test_written_says_whether_the_pipe_holds_everything_or_calls_back(
    pipes: tuple[str, str],
) -> None:
    server = PipeIOServer(*pipes)
    server.start()
    writer = writer_of(server)
    changed = threading.Event()
    assert writer.written(changed.set) is True  # nothing queued
    writer.send(b"waits for a reader")
    assert writer.written(changed.set) is None
    reader = peer("lines", server.out_pipe, "1")
    assert changed.wait(10), "nobody was told that the backlog was written"
    assert writer.written(changed.set) is True
    finish(reader)
    writer.send(b"never read")
    time.sleep(0.2)  # the reader has gone: it waits for the next one
    changed.clear()
    assert writer.written(changed.set) is None
    server.stop()
    assert changed.is_set(), "a stop did not end the wait"
    assert writer.written(changed.set) is True  # nothing waits: it was dropped
    assert server.stats.dropped_at_stop == 1


def test_the_threaded_send_still_waits_then_raises(pipes: tuple[str, str]) -> None:
    with PipeIOServer(*pipes, max_backlog=100, send_timeout=0.2) as server:
        server.send_message(b"x" * 100)
        started = time.monotonic()
        with pytest.raises(BacklogFull):
            server.send_message(b"y")
        assert time.monotonic() - started >= 0.2


def test_a_batch_left_while_the_lock_is_busy_goes_out_whole_and_in_order(
    pipes: tuple[str, str],
) -> None:
    """An owner that may not wait finds the lock busy: the writer thread takes its batch."""
    messages = [b"batched %d" % i for i in range(500)]
    with PipeIOServer(*pipes) as server:
        writer = writer_of(server)
        writer.patient_senders = False
        reader = peer("lines", server.out_pipe, str(len(messages) + 1))
        time.sleep(0.3)  # the reader is connected

        def owner() -> None:
            writer.cork()
            for message in messages:
                writer.send(message)
            writer.uncork()  # the lock is held below: this must not wait for it

        with writer._lock:
            thread = in_thread(owner)
            thread.join(5)
            assert not thread.is_alive(), "uncork waited for the lock"
        writer.send(b"after")
        lines = finish(reader).split()
    assert [bytes.fromhex(h.decode()) for h in lines] == [*messages, b"after"]


def test_a_batch_left_to_the_writer_thread_is_counted_at_stop(pipes: tuple[str, str]) -> None:
    server = PipeIOServer(*pipes)
    server.start()
    writer = writer_of(server)
    writer.patient_senders = False

    def owner() -> None:
        writer.cork()
        for number in range(10):
            writer.send(b"never read %d" % number)
        writer.uncork()

    with writer._lock:  # no reader: the writer thread has no round in which to take it
        thread = in_thread(owner)
        thread.join(5)
    assert len(writer._batch) == 10
    server.stop()
    # send() returned for each: accepted (sent), then dropped, as a backlog left at stop is.
    assert (server.stats.sent, server.stats.dropped_at_stop) == (10, 10)


# Backlog


def test_a_huge_group_is_framed_in_slices_whole_and_in_order() -> None:
    messages = [b"%06d" % i for i in range(200_000)]
    backlog = Backlog()
    backlog.push_many(list(messages), sum(map(len, messages)))
    stream = bytearray()
    largest = 0
    while backlog.pending:
        data = b"".join(bytes(b) for b in backlog.buffers())
        largest = max(largest, len(data))
        stream += data
        backlog.sent(len(data))
    assert bytes(stream) == b"".join(m + b"\n" for m in messages)
    assert largest <= 2 * BATCH_BYTES
