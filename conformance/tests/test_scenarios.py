"""Scenario files: the catalogue loads, covers the issue's minimum, and mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.engine import difference
from conformance.registry import EXPECTED, Testee, load_clients, load_expected_failures
from conformance.scenario import ScenarioError, load, load_all, walk

MINIMUM = {
    "echo-plain-ascii",
    "echo-empty-message",
    "echo-cr",
    "echo-whitespace",
    "echo-backslashes",
    "echo-printf-specifiers",
    "echo-option-words",
    "echo-shell-metacharacters",
    "echo-utf8",
    "echo-invalid-utf8",
    "echo-nul",
    "echo-1mib",
    "echo-16mib",
    "echo-burst-10000",
    "client-queued-before-start",
    "client-run-twice",
    "client-server-stops",
    "client-tail-not-echoed",
    "server-sigkill-mid-message",
    "server-partial-not-glued",
    "server-reader-leaves-mid-message",
    "server-100-sequential-clients",
    "server-open-recv-first",
    "server-open-send-first",
    "server-send-only-receive-only",
    "server-stop-with-clients-attached",
}


def test_catalogue_loads_and_covers_the_minimum() -> None:
    scenarios = load_all()
    ids = {s.id for s in scenarios}
    assert ids >= MINIMUM
    for scenario in scenarios:
        assert scenario.title and scenario.timeout > 0
        if scenario.id.startswith("server-"):
            assert scenario.role == "server"
        elif scenario.id.startswith("client-"):
            assert scenario.role == "client"
        else:
            assert scenario.role == "both"


def test_big_payloads_are_generated_not_stored() -> None:
    by_id = {s.id: s for s in load_all()}
    payload = next(s for s in walk(by_id["echo-16mib"].steps) if s.action == "send").payloads[0]
    data = payload.at()
    assert len(data) == 16 * 1024 * 1024
    assert b"\n" not in data
    assert min(data) >= 0x20 and max(data) <= 0x7E
    again = next(s for s in walk(by_id["echo-16mib"].steps) if s.action == "expect").payloads[0]
    assert again.at() == data
    assert by_id["echo-16mib"].path.stat().st_size < 2000


def test_expected_failure_lists_are_empty_but_for_bash_nul() -> None:
    ids = {s.id for s in load_all()}
    clients = load_clients()
    assert {c.name for c in clients} == {"bash", "c", "java", "js", "python"}
    for client in clients:
        assert (EXPECTED / f"{client.name}.txt").exists()
        expected = load_expected_failures(client, ids)
        assert list(expected) == (["echo-nul"] if client.name == "bash" else [])


def test_a_list_naming_an_unknown_scenario_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("echo-typo because\n")
    with pytest.raises(ValueError, match="no scenario named 'echo-typo'"):
        load_expected_failures(Testee("x", "client", "x {recv} {send}"), {"echo-cr"}, tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('role = "client"\ntimeout = 1\nsteps = [{ send = "a" }]', "missing 'title'"),
        ('title = "t"\nrole = "x"\ntimeout = 1\nsteps = [{ send = "a" }]', "role must be"),
        ('title = "t"\nrole = "both"\ntimeout = 1\nsteps = [{ sned = "a" }]', "exactly one action"),
        ('title = "t"\nrole = "both"\ntimeout = 1\nsteps = [{ send = "a\\nb" }]', "newline"),
        (
            'title = "t"\nrole = "both"\ntimeout = 1\nsteps = [{ send = "a", peer = 1, x = 2 }]',
            "unknown key 'x'",
        ),
        ('title = "t"\nrole = "both"\ntimeout = 1\nsteps = [{ send = { hex = "zz" } }]', "bad hex"),
        (
            'title = "t"\nrole = "both"\ntimeout = 1\n'
            'steps = [{ send = { random = "1 MB", seed = 1 } }]',
            "not a size",
        ),
        ('title = "t"\nrole = "both"\ntimeout = 1\nstep = []', "unknown key 'step'"),
        (
            'title = "t"\nrole = "server"\nserver = "raw"\ntimeout = 1\nsteps = [{ pause = 1 }]',
            "client-role",
        ),
    ],
)
def test_mistakes_in_a_scenario_file_name_the_file_and_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "mistake.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=r"mistake\.toml") as caught:
        load(path)
    assert message in str(caught.value)


def test_difference_names_the_first_differing_byte() -> None:
    lines = difference(b"abcdef", b"abXdef")
    assert lines[-1] == "first difference at byte 2: expected 0x63, got 0x58"
    big = bytes(100_000)
    lines = difference(big, big[:-1])
    assert "(100000 bytes)" in lines[0] and "(99999 bytes)" in lines[1]
    assert "first difference at byte 99999: expected 0x00, got end of message" in lines
