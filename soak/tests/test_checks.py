"""The soak's checks on records made by hand: each must pass a faithful run and catch a fault.

A check that never fires proves nothing; these show, for the checks of the newer faults,
the record a faithful server leaves and the one a broken server would.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest

from soak import stall, wire
from soak.oracle import Oracle
from soak.records import Batch, Instance, ReaderRecord, WriterRecord

KINDS = ("empty", "tiny")


def kinds(oracle: Oracle) -> list[str]:
    return [v["kind"] for v in oracle.violations]


def run_dir(tmp_path: Path, handled: list[str], sent: list[str], events: list[str]) -> Path:
    for name, lines in (("handled.log", handled), ("sent.log", sent), ("events.log", events)):
        (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    return tmp_path


def instance(graceful: bool = True, stats: dict[str, Any] | None = None) -> Instance:
    inst = Instance(1, in_ino=77, created=0.0, stopped=100.0, gone=101.0, graceful=graceful)
    inst.drained = 50.0
    inst.stats = stats
    return inst


# -- anonymous messages in: known by their place among the anonymous writers' batches ------


def anonymous_writer(
    wid: int, kind: str, batches: list[tuple[int, int, float | None]]
) -> WriterRecord:
    record = WriterRecord(wid, "anonymous_writer", False, ino=77, opened=1.0 + wid)
    record.batches = [Batch(first, count, kind, done) for first, count, done in batches]
    return record


def handled_lines(messages: list[bytes]) -> list[str]:
    return [f"A 1 {n} {m.hex() or '-'}" for n, m in enumerate(messages)]


def inbound(
    tmp_path: Path, writers: list[WriterRecord], got: list[bytes], graceful: bool = True
) -> Oracle:
    oracle = Oracle(max_message_size=1000)
    oracle.instances[1] = instance(graceful)
    for writer in writers:
        oracle.writers[writer.wid] = writer
    oracle.check_inbound(run_dir(tmp_path, handled_lines(got), [], []))
    return oracle


def messages(kind: str, first: int, count: int) -> list[bytes]:
    return [wire.anonymous(kind, k) for k in range(first, first + count)]


@pytest.mark.parametrize("kind", KINDS)
def test_anonymous_messages_handled_once_in_order_pass(tmp_path: Path, kind: str) -> None:
    writers = [
        anonymous_writer(1, kind, [(0, 5, 10.0), (5, 5, 11.0)]),
        anonymous_writer(2, "tiny", [(0, 3, 20.0)]),
    ]
    got = messages(kind, 0, 10) + messages("tiny", 0, 3)
    oracle = inbound(tmp_path, writers, got)
    assert oracle.violations == []
    assert oracle.figures["anonymous messages checked (inbound)"] == 13


@pytest.mark.parametrize(
    ("kind", "caught"),
    [
        ("empty", "message written whole never handled"),  # one fewer: the count tells
        ("tiny", "anonymous messages handled out of place"),
    ],
)
def test_an_anonymous_message_lost_in_the_middle_is_caught(
    tmp_path: Path, kind: str, caught: str
) -> None:
    writers = [anonymous_writer(1, kind, [(0, 5, 10.0), (5, 5, 11.0)])]
    got = messages(kind, 0, 10)
    del got[3]
    assert kinds(inbound(tmp_path, writers, got)) == [caught]


@pytest.mark.parametrize(
    ("kind", "caught"),
    [
        ("empty", "anonymous message handled that no writer sent"),
        ("tiny", "anonymous messages handled out of place"),
    ],
)
def test_an_anonymous_message_handled_twice_is_caught(
    tmp_path: Path, kind: str, caught: str
) -> None:
    writers = [anonymous_writer(1, kind, [(0, 5, 10.0)])]
    got = messages(kind, 0, 5)
    got.insert(2, got[2])
    assert kinds(inbound(tmp_path, writers, got)) == [caught]


def test_anonymous_messages_swapped_are_caught(tmp_path: Path) -> None:
    writers = [anonymous_writer(1, "tiny", [(0, 8, 10.0)])]
    got = messages("tiny", 0, 8)
    got[1], got[4] = got[4], got[1]
    assert kinds(inbound(tmp_path, writers, got)) == ["anonymous messages handled out of place"]


def test_a_loss_at_the_end_is_excused_only_by_a_stop_under_load(tmp_path: Path) -> None:
    writers = [anonymous_writer(1, "empty", [(0, 5, 40.0), (5, 5, 60.0)])]
    cut = messages("empty", 0, 7)  # the last three were in in_pipe at the stop
    assert inbound(tmp_path, writers, cut, graceful=False).violations == []
    assert kinds(inbound(tmp_path, writers, cut, graceful=True)) == [
        "message written whole never handled"
    ]
    early = [anonymous_writer(1, "empty", [(0, 5, 40.0)])]  # written before the quiet point
    assert kinds(inbound(tmp_path, early, messages("empty", 0, 3), graceful=False)) == [
        "message written whole never handled"
    ]


def test_a_batch_never_logged_as_written_may_be_missing_whole(tmp_path: Path) -> None:
    writers = [anonymous_writer(1, "tiny", [(0, 4, 10.0), (4, 4, None)])]
    assert inbound(tmp_path, writers, messages("tiny", 0, 4)).violations == []
    assert inbound(tmp_path, writers, messages("tiny", 0, 8)).violations == []


# -- messages out: an anonymous one takes the place after the last one read -----------------


def sent_line(seq: int, message: bytes, anonymous: bool) -> str:
    tag = " a" if anonymous else ""
    return f"S 1 {seq} f1.{seq} {len(message)} {zlib.crc32(message)}{tag}"


def reader(rid: int, taken: list[tuple[int, int, int, int]]) -> ReaderRecord:
    return ReaderRecord(rid, "reader", False, 0, 5.0, taken, False, [], 0)


def outbound(tmp_path: Path, plan: list[bytes | None], sessions: list[list[int]]) -> Oracle:
    """plan: what was sent, None for a framed message; sessions: what each reader read."""
    sent = [
        sent_line(n, m if m is not None else b"body", m is not None) for n, m in enumerate(plan)
    ]
    oracle = Oracle(max_message_size=1000)
    oracle.instances[1] = instance(stats=stats(sent=len(plan)))
    for rid, places in enumerate(sessions):
        taken = []
        for place in places:
            message = plan[place]
            if message is None:
                taken.append((1, place, 4, zlib.crc32(b"body")))
            else:
                taken.append((-1, -1, len(message), zlib.crc32(message)))
        oracle.readers.append(reader(rid, taken))
    oracle.check_outbound(run_dir(tmp_path, [], sent, []))
    return oracle


PLAN = [None, b"", b"", b"a", None, b"", b"bc", None]


def test_anonymous_messages_read_in_turns_pass(tmp_path: Path) -> None:
    oracle = outbound(tmp_path, PLAN, [[0, 1], [2, 3, 4, 5], [6, 7]])
    assert oracle.violations == []
    assert oracle.figures["anonymous messages checked (outbound)"] == 5


def test_an_anonymous_message_redelivered_after_it_was_taken_is_caught(tmp_path: Path) -> None:
    assert "message delivered twice" in kinds(
        outbound(tmp_path, PLAN, [[0, 1, 2, 3], [3, 4, 5, 6, 7]])
    )


def test_an_anonymous_message_lost_between_readers_is_caught(tmp_path: Path) -> None:
    assert "message lost on the way out" in kinds(
        outbound(tmp_path, PLAN, [[0, 1], [3, 4, 5, 6, 7]])
    )


def test_anonymous_messages_never_read_after_a_full_drain_are_caught(tmp_path: Path) -> None:
    assert kinds(outbound(tmp_path, PLAN, [[0, 1, 2, 3, 4, 5]])) == [
        "sent messages never delivered"
    ]


# -- counters the hardened server keeps -----------------------------------------------------


def stats(**values: Any) -> dict[str, Any]:
    base = {"received": 0, "sent": 0, "handler_errors": 0, "dropped_at_stop": 0}
    return {**base, "unhandled_at_stop": 0, "error": None, **values}


def test_refused_sends_count_as_dropped_at_stop(tmp_path: Path) -> None:
    sent = [sent_line(0, b"x", False), "E 1 f2.0 ServerStopped", "E 1 f2.1 ServerStopped"]
    for dropped, ok in ((2, True), (3, True), (4, False)):
        oracle = Oracle(max_message_size=1000)
        oracle.instances[1] = instance(graceful=False, stats=stats(sent=1, dropped_at_stop=dropped))
        oracle.check_outbound(run_dir(tmp_path, [], sent, []))
        assert (oracle.violations == []) is ok, (dropped, oracle.violations)


def test_a_server_that_stopped_itself_is_caught(tmp_path: Path) -> None:
    oracle = Oracle(max_message_size=1000)
    oracle.instances[1] = instance(stats=stats(error="the reader thread raised OSError()"))
    oracle.check_outbound(run_dir(tmp_path, [], [], []))
    assert kinds(oracle) == ["the server stopped itself"]


# -- the server's log -------------------------------------------------------------------------

SHORT = "1.0 1 WARNING cannot reopen /x/in: Too many open files; retrying until it is back"
BACK = "2.0 1 WARNING cannot reopen /x/in: back after 1.0 s"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([SHORT, BACK, SHORT, BACK], []),
        ([SHORT], []),  # the instance stopped in the shortage
        ([SHORT, SHORT, BACK], ["a shortage logged more than once"]),
        ([BACK], ["a shortage ended that never began"]),
        (
            ["3.0 1 WARNING a new reader took over /x/out mid-stream"],
            ["server saw a reader take over mid-stream"],
        ),
    ],
)
def test_the_server_log(tmp_path: Path, events: list[str], expected: list[str]) -> None:
    oracle = Oracle(max_message_size=1000)
    oracle.check_events(run_dir(tmp_path, [], [], events))
    assert kinds(oracle) == expected


# -- serve --exec with a CMD that stops reading -----------------------------------------------


def echoes(*pairs: tuple[int, int]) -> str:
    return b"".join(
        wire.frame(f"s{w}", seq, b"x" * seq)[0] + wire.NEWLINE for w, seq in pairs
    ).hex()


def seen(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ready": True,
        "echoes_due": 3,
        "echoes": echoes((0, 0), (1, 0), (0, 1)),
        "written": [10, 10],
        "stall_reports": 1,
        "exit_seconds": 0.1,
        "status": 0,
        "fifos_left": [],
        "processes_left": [],
        "cmd_pids": [10, 11],
        "stderr": "",
    }
    return {**base, **values}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, []),
        ({"echoes": echoes((0, 0), (0, 2), (1, 0))}, ["echoes of CMD out of order"]),
        ({"echoes": echoes((0, 0), (1, 0))}, ["echoes of CMD missing"]),
        ({"echoes": echoes((0, 0), (1, 0), (0, 1))[:-4]}, ["echo of CMD cut short"]),
        ({"stall_reports": 0}, ["CMD stopped reading, and serve never said so"]),
        ({"exit_seconds": 1.3}, ["serve --exec did not end within a second of SIGTERM"]),
        ({"status": 1}, ["serve --exec ended on SIGTERM with a failure"]),
        ({"fifos_left": ["out"]}, ["serve --exec left FIFOs behind"]),
        ({"processes_left": [11, -10]}, ["serve --exec left CMD's processes behind"]),
        ({"ready": False}, ["serve --exec did not start"]),
    ],
)
def test_the_stall_episode(values: dict[str, Any], expected: list[str]) -> None:
    assert [kind for kind, _ in stall.check(seen(**values))] == expected
