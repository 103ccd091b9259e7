"""Outbound bookkeeping: whatever a departing reader leaves behind reaches the next one whole."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pipe_io_server.backlog import Backlog
from pipe_io_server.framing import MESSAGE_OVERHEAD

# Each step: ("write", capacity) | ("read", size) | ("leave", 0); small reads cut messages
# at every byte, the newline included.
amounts = st.one_of(
    st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=70_000)
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), amounts),
        st.tuples(st.just("read"), amounts),
        st.tuples(st.just("leave"), st.just(0)),
    ),
    max_size=60,
)
payloads = st.lists(
    st.one_of(st.binary(max_size=20), st.just(b"L" * 70_000)).map(lambda b: b.replace(b"\n", b"")),
    max_size=25,
)


@settings(max_examples=300)
@given(payloads, steps, st.lists(st.integers(min_value=1, max_value=5), max_size=25))
def test_each_message_is_read_whole_exactly_once_in_order(
    messages: list[bytes], script: list[tuple[str, int]], groups: list[int]
) -> None:
    backlog = Backlog()
    position = 0
    for group in [*groups, len(messages)]:  # singly and in dispatch-batch groups
        chunk = messages[position : position + group]
        position += group
        if len(chunk) == 1:
            backlog.push(chunk[0])
        elif chunk:
            backlog.push_many(list(chunk), sum(map(len, chunk)))
    pipe = bytearray()  # bytes written but not yet read by the current reader
    session = bytearray()  # what the current reader has read
    whole: list[bytes] = []  # messages readers took whole, in the order they took them

    def reader_leaves() -> None:
        nonlocal session
        lines = bytes(session).split(b"\n")
        whole.extend(lines[:-1])  # a trailing fragment is not a message
        backlog.rewind(len(pipe))
        pipe.clear()
        session = bytearray()

    for action, amount in [*script, ("drain", 0)]:
        if action == "write" and backlog.pending:
            data = b"".join(bytes(b) for b in backlog.buffers())[: max(amount, 1)]
            pipe += data
            backlog.sent(len(data))
        elif action == "read":
            session += pipe[:amount]
            del pipe[:amount]
            backlog.acknowledge(len(pipe))
        elif action == "leave":
            reader_leaves()
        elif action == "drain":
            while backlog.pending:
                data = b"".join(bytes(b) for b in backlog.buffers())
                pipe += data
                backlog.sent(len(data))
            session += pipe
            pipe.clear()
            backlog.acknowledge(0)
            reader_leaves()
    assert whole == messages
    assert len(backlog) == 0
    assert backlog.waiting_cost == 0


def test_rewind_counts_only_messages_that_reached_the_pipe() -> None:
    backlog = Backlog()
    for message in (b"one", b"two", b"three"):
        backlog.push(message)
    data = bytes(backlog.buffers()[0])
    backlog.sent(6)  # "one\ntw" reached the pipe
    assert data.startswith(b"one\ntw")
    assert backlog.rewind(unread=2) == 1  # "one" was read whole; "two" was cut
    assert bytes(backlog.buffers()[0]) == b"two\nthree\n"


def test_clear_counts_what_never_reached_the_pipe() -> None:
    backlog = Backlog()
    for message in (b"a" * 70_000, b"b", b"c"):
        backlog.push(message)
    backlog.buffers()
    backlog.sent(10)
    assert backlog.clear() == 2
    assert not backlog.pending


def test_a_message_read_all_but_its_last_bytes_is_still_held() -> None:
    """What the writer prunes by: a large message costs its whole size until taken whole,
    and asking the pipe is worth it only once the message is wholly written."""
    backlog = Backlog()
    backlog.push(b"x" * 100_000)
    backlog.buffers()
    backlog.sent(60_000)
    assert backlog.reclaimable == 0
    backlog.sent(sum(map(len, backlog.buffers())))
    backlog.acknowledge(unread=10)
    assert backlog.reclaimable == 100_001
    backlog.acknowledge(unread=0)
    assert backlog.reclaimable == 0


def test_each_message_costs_its_payload_and_a_fixed_overhead() -> None:
    backlog = Backlog()
    for _ in range(1000):
        backlog.push(b"")
    backlog.push_many([b"ab", b""], 2)
    assert backlog.waiting_cost == 1002 * MESSAGE_OVERHEAD + 2


def test_what_goes_out_again_is_charged_again() -> None:
    backlog = Backlog()
    backlog.push_many([b"one", b"two", b"three"], 11)
    backlog.sent(len(backlog.buffers()[0]))
    assert backlog.waiting_cost == 0
    backlog.rewind(unread=len(b"two\nthree\n") + 1)  # "one" was read all but its newline
    assert backlog.waiting_cost == 11 + 3 * MESSAGE_OVERHEAD
    assert bytes(backlog.buffers()[0]) == b"one\ntwo\nthree\n"
    assert backlog.waiting_cost == 0


def test_a_departure_within_a_unit_of_many_messages() -> None:
    backlog = Backlog()
    messages = [b"%d" % i for i in range(10_000)]
    backlog.push_many(list(messages), sum(map(len, messages)))
    written = 0
    while backlog.pending:
        chunk = sum(map(len, backlog.buffers()))
        backlog.sent(chunk)
        written += chunk
    stream = b"".join(m + b"\n" for m in messages)
    cut = stream.index(b"\n5000\n") + 3  # the reader took "...4999\n5" and left
    assert backlog.rewind(unread=written - cut) == 5000
    again = b"".join(bytes(b) for b in backlog.buffers())
    assert again.split(b"\n")[:-1] == messages[5000:]
    assert len(backlog) == 5000


def test_a_second_departure_keeps_the_order_of_what_went_out_again() -> None:
    """Units queued again by one departure and not all written before the next one."""
    backlog = Backlog()
    big = [bytes([ord("a") + i]) * 70_000 for i in range(3)]  # one unit each
    for message in big:
        backlog.push(message)
    for _ in range(2):
        backlog.sent(sum(map(len, backlog.buffers())))
    backlog.rewind(unread=140_002)  # the reader took nothing: both units go out again
    backlog.buffers()
    backlog.sent(10)  # the next reader gets ten bytes of the first one and leaves
    backlog.rewind(unread=10)
    out = []
    while backlog.pending:
        data = b"".join(bytes(b) for b in backlog.buffers())
        backlog.sent(len(data))
        out.append(data)
    assert b"".join(out).split(b"\n")[:-1] == big


def test_a_message_written_alone_is_redelivered_whole_if_cut() -> None:
    backlog = Backlog()
    backlog.wrote(b"alone\n", 4)  # the pipe took "alon"
    assert backlog.pending
    assert bytes(backlog.buffers()[0]) == b"e\n"
    backlog.sent(2)
    backlog.push(b"next")
    assert backlog.rewind(unread=3) == 1  # the reader took "alo" and left
    again = b"".join(bytes(b) for b in backlog.buffers())
    assert again == b"alone\n"
