"""Scenario files: the catalogue loads, covers the issue's minimum, and mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.engine import difference
from conformance.registry import (
    CLIENTS,
    EXPECTED,
    REASON_PLACEHOLDER,
    SERVERS,
    RegistryError,
    Testee,
    load_clients,
    load_expected_failures,
    load_servers,
    update_expected_failures,
)
from conformance.scenario import ScenarioError, load, load_all, walk
from conformance.tests.conftest import ROOT

HOME = ROOT / "conformance"

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
    # redelivery, at several sizes, with messages queued behind, and whole messages unread
    "server-redeliver-short-message",
    "server-redeliver-under-pipe-buf",
    "server-redeliver-over-pipe-buf",
    "server-redeliver-64kib",
    "server-redeliver-1mib-queued-behind",
    "server-redeliver-whole-messages-unread",
    "server-redeliver-not-what-was-taken",
    "server-redeliver-before-newline",
    "server-redeliver-before-later-messages",
    "server-redeliver-twice",
    "server-readers-take-turns",
    # in_pipe held across clients, overlapping clients, a dead writer's tail
    "server-writers-back-to-back",
    "server-writers-overlapping",
    "server-size-limit",
    "server-concurrent-writers",
    "server-client-opens-before-start",
    "server-receiver-opens-before-start",
    "server-back-pressure",
    "server-stop-pipe-content-readable",
    "server-no-false-eof",
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


def test_expected_failure_lists_are_empty_but_for_bash_nul_and_1_0_3() -> None:
    ids = {s.id for s in load_all()}
    testees = load_clients(HOME / CLIENTS) + load_servers(HOME / SERVERS)
    assert {"bash", "c", "java", "js", "python", "python-1.0.3"} <= {t.name for t in testees}
    for testee in testees:
        # Loading refuses a line without a reason, or with the placeholder still in it.
        expected = load_expected_failures(testee, ids, HOME / EXPECTED)
        if testee.name.endswith("1.0.3"):
            assert expected, testee.label
        else:
            assert list(expected) == (["echo-nul"] if testee.name == "bash" else []), testee.label


def test_a_list_naming_an_unknown_scenario_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("echo-typo because\n")
    with pytest.raises(ValueError, match="no scenario named 'echo-typo'"):
        load_expected_failures(Testee("x", "client", "x {recv} {send}"), {"echo-cr"}, tmp_path)


def test_update_adds_placeholders_the_loader_refuses_and_removes_passes(tmp_path: Path) -> None:
    testee = Testee("port", "server", "port {in} {out}")
    path = tmp_path / "server-port.txt"
    path.write_text("# kept comment\necho-cr CR is split\necho-nul NUL is dropped\n")
    added, removed = update_expected_failures(testee, ["echo-utf8"], ["echo-cr"], tmp_path)
    assert (added, removed) == (["echo-utf8"], ["echo-cr"])
    assert path.read_text().splitlines() == [
        "# kept comment",
        "echo-nul NUL is dropped",
        f"echo-utf8 {REASON_PLACEHOLDER}",
    ]
    ids = {"echo-cr", "echo-nul", "echo-utf8"}
    with pytest.raises(RegistryError, match=r"server-port\.txt:3: echo-utf8: replace"):
        load_expected_failures(testee, ids, tmp_path)
    path.write_text(path.read_text().replace(REASON_PLACEHOLDER, "UTF-8 decoded"))
    assert load_expected_failures(testee, ids, tmp_path) == {
        "echo-nul": "NUL is dropped",
        "echo-utf8": "UTF-8 decoded",
    }
    assert update_expected_failures(testee, [], [], tmp_path) == ([], [])


def test_a_new_list_gets_a_header(tmp_path: Path) -> None:
    testee = Testee("go", "client", "go {recv} {send}")
    update_expected_failures(testee, ["echo-cr"], [], tmp_path)
    assert (tmp_path / "go.txt").read_text().splitlines() == [
        "# Scenarios go is known to fail, one per line: ID REASON.",
        f"echo-cr {REASON_PLACEHOLDER}",
    ]


def test_registry_needs_and_install(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(
        '[here]\nrun = "sh {recv} {send}"\nneeds = ["sh", "/bin/true"]\n'
        '[gone]\nrun = "x {recv} {send}"\nneeds = ["no-such-command-xyz", "./nope"]\n'
        'install = "apt-get install -y xyz"\n'
    )
    here, gone = load_clients(path)
    assert here.missing("/usr/bin:/bin") == []
    assert gone.missing("/usr/bin:/bin") == ["no-such-command-xyz", "./nope"]
    assert gone.install == "apt-get install -y xyz"
    path.write_text('[bad]\nrun = "x {recv} {send}"\nneeds = "sh"\n')
    with pytest.raises(RegistryError, match="needs is a list"):
        load_clients(path)


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
        (
            'title = "t"\nrole = "server"\ntimeout = 1\nserver_options = { max_size = 1 }\n'
            "steps = [{ pause = 1 }]",
            "unknown key 'max_size'",
        ),
        (
            'title = "t"\nrole = "server"\ntimeout = 1\nsteps = [{ writers = 2, count = 1 }]',
            "writers needs send",
        ),
        (
            'title = "t"\nrole = "server"\ntimeout = 1\n'
            'steps = [{ writers = 2, send = { format = "{i}" }, count = 1, sessions = 2 }]',
            "sessions cannot exceed count",
        ),
        (
            'title = "t"\nrole = "server"\ntimeout = 1\nsteps = [{ expect = "x", writers = 2 }]',
            "writers goes with one format payload",
        ),
        (
            'title = "t"\nrole = "both"\ntimeout = 1\nsteps = [{ send = { format = "{j}" } }]',
            "format may only use {i} and {w}",
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
