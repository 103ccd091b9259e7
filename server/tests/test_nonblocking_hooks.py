"""The core's hooks for a consumer or a sender that must not block (the asyncio face): an
inbox taken a read at a time with a callback when more arrives, a send that reports a full
backlog instead of waiting, and a batch its owner leaves to the writer thread."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import finish, in_thread, peer
from pipe_io_server import BacklogFull, PipeIOServer
from pipe_io_server.backlog import BATCH_BYTES, Backlog
from pipe_io_server.framing import MESSAGE_OVERHEAD
from pipe_io_server.inbox import Inbox
from pipe_io_server.writer import ServerStopped, Writer

# Inbox


def test_put_many_queues_a_group_that_take_returns_whole() -> None:
    inbox = Inbox(None)
    assert inbox.put_many([b"a", b"b"]) == 2
    assert inbox.put_many([b"c"]) == 1
    group = inbox.take()
    assert group is not None and list(group) == [b"a", b"b"]
    assert inbox.get(0) == b"c"  # the pull API reads the same queue, in order
    assert inbox.take() is None


def test_get_reads_across_groups_in_order() -> None:
    inbox = Inbox(None)
    inbox.put_many([b"1", b"2", b"3"])
    inbox.put(b"4")
    inbox.put_many([b"5"])
    assert [inbox.get(0) for _ in range(5)] == [b"1", b"2", b"3", b"4", b"5"]
    with pytest.raises(TimeoutError):
        inbox.get(0)


def test_put_many_waits_for_room_message_by_message() -> None:
    cost = 100 + MESSAGE_OVERHEAD
    inbox = Inbox(3 * cost)
    messages = [b"%03d" % i + b"x" * 97 for i in range(7)]
    queued: list[int] = []
    putting = in_thread(lambda: queued.append(inbox.put_many(messages)))
    time.sleep(0.2)
    assert putting.is_alive(), "put_many did not wait for room"
    first = inbox.take()
    assert first is not None and list(first) == messages[:3]  # what fit, nothing more
    taken = list(first)
    while len(taken) < len(messages):
        group = inbox.take()
        if group is None:
            time.sleep(0.01)
            continue
        assert len(group) <= 3
        taken.extend(group)
    putting.join(5)
    assert queued == [7]
    assert taken == messages


def test_a_message_larger_than_the_limit_enters_an_empty_inbox() -> None:
    inbox = Inbox(10)
    queued: list[int] = []
    putting = in_thread(lambda: queued.append(inbox.put_many([b"x" * 100, b"y" * 100])))
    groups: list[list[bytes]] = []
    deadline = time.monotonic() + 5
    while len(groups) < 2 and time.monotonic() < deadline:
        group = inbox.take()
        if group is None:
            time.sleep(0.01)
        else:
            groups.append(list(group))
    putting.join(5)
    assert groups == [[b"x" * 100], [b"y" * 100]]  # one at a time, each alone
    assert queued == [2]


def test_put_many_returns_how_many_were_queued_once_closed() -> None:
    inbox = Inbox(2 * (1 + MESSAGE_OVERHEAD))
    queued: list[int] = []
    putting = in_thread(lambda: queued.append(inbox.put_many([b"a", b"b", b"c", b"d"])))
    time.sleep(0.2)
    assert inbox.close() == 2
    putting.join(5)
    assert queued == [2]
    assert inbox.get(0) == b"a" and inbox.get(0) == b"b"
    with pytest.raises(EOFError):
        inbox.take()


def test_take_calls_back_once_when_messages_arrive() -> None:
    inbox = Inbox(None)
    calls: list[str] = []
    assert inbox.take(lambda: calls.append("ready")) is None
    inbox.put_many([b"m"])
    inbox.put(b"n")
    assert calls == ["ready"]  # once, not per put


def test_take_calls_back_at_close_and_forget_withdraws() -> None:
    inbox = Inbox(None)
    calls: list[str] = []

    def withdrawn() -> None:
        calls.append("withdrawn")

    assert inbox.take(withdrawn) is None
    assert inbox.take(lambda: calls.append("closed")) is None
    inbox.forget(withdrawn)
    inbox.close()
    assert calls == ["closed"]
    with pytest.raises(EOFError):
        inbox.take()


def test_a_single_put_costs_no_group_of_its_own() -> None:
    """The pull API queues messages one by one: each joins the last group."""
    inbox = Inbox(None)
    for i in range(1000):
        inbox.put(b"%d" % i)
    group = inbox.take()
    assert group is not None and len(group) == 1000


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
