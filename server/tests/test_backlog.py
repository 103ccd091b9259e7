"""Outbound bookkeeping: whatever a departing reader leaves behind reaches the next one whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pipe_io_server.backlog import Backlog

# Each step: ("write", capacity) | ("read", size) | ("leave", 0)
steps = st.lists(
    st.tuples(
        st.sampled_from(["write", "read", "leave"]), st.integers(min_value=0, max_value=70_000)
    ),
    max_size=60,
)
payloads = st.lists(
    st.one_of(st.binary(max_size=20), st.just(b"L" * 70_000)).map(lambda b: b.replace(b"\n", b"")),
    max_size=25,
)


@given(payloads, steps)
def test_each_message_is_read_whole_exactly_once_in_order(
    messages: list[bytes], script: list[tuple[str, int]]
) -> None:
    backlog = Backlog()
    for message in messages:
        backlog.push(message)
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
    assert backlog.waiting_bytes == 0


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
