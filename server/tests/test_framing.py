"""The pure framing layer, explored with every way a stream can be cut into reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipe_io_server.framing import Decoder, Discard, encode

messages = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def decode(decoder: Decoder, stream: bytes, cuts: list[int]) -> list[bytes]:
    """Feed the stream cut at the given points; return every message produced."""
    out: list[bytes] = []
    for chunk in chunked(stream, cuts):
        out.extend(decoder.feed(chunk))
    return out


def decode_in_place(decoder: Decoder, stream: bytes, cuts: list[int]) -> list[bytes]:
    """The same stream read into the decoder's buffers, as the server's reader does."""
    out: list[bytes] = []
    for chunk in chunked(stream, cuts):
        at = 0
        while at < len(chunk):
            buffer = decoder.get_buffer()
            count = min(len(buffer), len(chunk) - at)
            buffer[:count] = chunk[at : at + count]
            del buffer
            out.extend(decoder.buffer_updated(count))
            at += count
    return out


@given(messages, st.lists(st.integers(min_value=0), max_size=20))
def test_any_chunking_yields_the_messages_in_order(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(m + b"\n" for m in items)
    decoder = Decoder()
    out = decode(decoder, stream, cuts)
    decoder.close()
    assert out == items
    assert decoder.discards == []


@given(
    messages,
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"x")),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_tail_is_discarded_and_never_glued(
    items: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(m + b"\n" for m in items) + tail
    decoder = Decoder()
    out = decode(decoder, stream, cuts)
    decoder.close()
    assert out == items
    assert decoder.discards == [Discard("tail", len(tail))]
    assert decoder.feed(b"next\n") == [b"next"]


@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    st.integers(min_value=0, max_value=20),
    st.lists(st.integers(min_value=0), max_size=20),
)
def test_oversized_messages_are_dropped_and_the_stream_resynchronises(
    items: list[bytes], limit: int, cuts: list[int]
) -> None:
    stream = b"".join(m + b"\n" for m in items)
    decoder = Decoder(max_message_size=limit)
    out = decode(decoder, stream, cuts)
    assert out == [m for m in items if len(m) <= limit]
    assert decoder.discards == [Discard("oversized", len(m)) for m in items if len(m) > limit]
    assert decoder.pending == 0


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.integers(min_value=1, max_value=16),
    st.integers(min_value=0, max_value=30),
    st.lists(st.integers(min_value=0), max_size=20),
)
def test_reading_into_the_buffer_frames_like_feed(
    items: list[bytes], read_size: int, limit: int, cuts: list[int]
) -> None:
    stream = b"".join(m + b"\n" for m in items) + b"tail"
    fed, filled = Decoder(limit), Decoder(limit, read_size=read_size)
    assert decode_in_place(filled, stream, cuts) == decode(fed, stream, cuts)
    fed.close()
    filled.close()
    assert filled.discards == fed.discards


def test_a_large_message_is_read_in_place_and_handed_over_without_a_copy() -> None:
    decoder = Decoder(read_size=1000)
    first = b"z" * 100_000
    assert decode_in_place(decoder, first + b"\n" + first[:50_000], []) == [first]
    held = decoder._held  # sized like the message before: no growth, no copy from here on
    messages = decode_in_place(decoder, first[50_000:] + b"\nnext", [])
    assert messages == [first]
    assert decoder.pending == 4
    # The bytes object the reads landed in is the message itself: BytesIO gives it out again.
    assert held is not None and held.getvalue() is messages[0]


def test_end_of_stream_frees_the_buffer_made_ready_for_a_long_message() -> None:
    decoder = Decoder(read_size=1000)
    assert decode_in_place(decoder, b"z" * 100_000 + b"\n", []) == [b"z" * 100_000]
    assert len(decoder.get_buffer()) > 100_000  # the next is expected alike: read in place
    decoder.close()  # ...but the stream ended: an idle server keeps no such buffer
    assert decoder._held is None
    # Nor does the next stream (another client) start with one: a hint is per stream.
    assert len(decoder.get_buffer()) <= 1000


def test_oversized_line_is_not_held_in_memory() -> None:
    decoder = Decoder(max_message_size=10)
    for _ in range(1000):
        assert decoder.feed(b"y" * 1000) == []
    assert decoder._held is None
    assert decoder.feed(b"tail\nok\n") == [b"ok"]
    assert decoder.discards == [Discard("oversized", 1_000_004)]


def test_every_byte_but_newline_is_payload() -> None:
    payload = bytes(b for b in range(256) if b != 10)
    assert Decoder().feed(payload + b"\n\n") == [payload, b""]


def test_encode_takes_str_as_utf8_and_refuses_newlines() -> None:
    assert encode("é\r") == "é\r".encode()
    assert encode(bytearray(b"\0")) == b"\0"
    with pytest.raises(ValueError, match="newline"):
        encode(b"a\nb")
    with pytest.raises(ValueError, match="newline"):
        encode("a\n")
