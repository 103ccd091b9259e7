"""The suite has teeth: deliberately broken clients and servers are caught, each by the
scenarios aimed at its fault, while a correct client, and a correct port of the server,
pass those same scenarios."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conformance.scenario import load_all
from conformance.tests.conftest import CONTROL, PORT, ROOT

# broken client -> (command, scenarios that must catch it)
BROKEN_CLIENTS = {
    "split-on-cr": ("python3 conformance/broken/split-on-cr.py {recv} {send}", ["echo-cr"]),
    "empty-is-eof": (
        "python3 conformance/broken/empty-is-eof.py {recv} {send}",
        ["echo-empty-message"],
    ),
    "printf-format": (
        "bash conformance/broken/printf-format.sh {recv} {send}",
        ["echo-printf-specifiers", "echo-backslashes"],
    ),
    "echo-tail": ("bash conformance/broken/echo-tail.sh {recv} {send}", ["client-tail-not-echoed"]),
    "first-line-per-read": (
        "python3 conformance/broken/first-line-per-read.py {recv} {send}",
        ["client-message-in-pieces", "client-several-messages-per-read"],
    ),
}
# fault of conformance/broken/port.py -> the scenario that must catch it (a quick one).
PORT_FAULTS = {
    "never-redeliver": "server-redeliver-short-message",
    "drop-unread": "server-redeliver-64kib",
    "no-drain": "server-redeliver-short-message",
    "no-renew": "server-readers-take-turns-without-pause",
    "redeliver-taken": "server-redeliver-whole-messages-unread",
    "drop-partial": "server-redeliver-short-message",
    "lf-not-counted": "server-redeliver-before-newline",
    "requeue-at-back": "server-redeliver-1mib-queued-behind",
    "redeliver-once": "server-redeliver-twice",
    "bounded-queue": "server-messages-wait-for-a-reader",
    "read-end-of-out": "server-redeliver-short-message",
    "drop-while-no-reader": "server-messages-wait-for-a-reader",
    "close-out-when-idle": "server-open-recv-first-after-reader-left",
    "small-first": "echo-mixed-sizes",
    "dup-on-partial-write": "server-back-pressure",
    "drop-on-partial-write": "server-back-pressure",
    "blocking-echo": "server-back-pressure",
    "close-in-between": "server-writers-back-to-back",
    "hold-in-rdwr": "server-partial-not-glued",
    "tail-as-message": "server-partial-not-glued",
    "replace-fifos": "server-client-opens-before-start",
    "split-on-cr": "echo-cr",
    "strip-cr": "echo-cr",
    "skip-empty": "server-several-messages-in-one-write",
    "read-is-message": "server-message-in-pieces",
    "no-size-limit": "server-size-limit",
    "size-limit-fragments": "server-size-limit",
    "size-limit-no-resync": "server-size-limit",
    "limit-counts-newline": "server-size-limit",
    "stop-without-eof": "server-stop-with-clients-attached",
    "leave-pipes": "server-stop-idle",
    "stop-drains": "server-stop-pipe-content-readable",
    "stop-waits-for-open": "server-stop-idle",
    "exit-1": "server-stop-idle",
}
# No percent sign, backslash, CR, empty message or tail: the broken clients pass it, but for
# those whose fault shows whenever one read brings several messages.
SANITY = "echo-utf8"
NO_SANITY = {"first-line-per-read"}


@pytest.mark.timeout(180)
def test_broken_clients_are_caught_by_their_scenarios(suite: Any) -> None:
    targeted = sorted({s for _, scenarios in BROKEN_CLIENTS.values() for s in scenarios})
    args = [f"--client=control={CONTROL}"]
    for name, (command, _) in BROKEN_CLIENTS.items():
        args.append(f"--client={name}={command}")
    run = suite(*args, "--scenario", ",".join([SANITY, *targeted]))
    assert run.status == 1, run.stdout
    for name, (_, scenarios) in BROKEN_CLIENTS.items():
        # Each broken client works at all, so its failures are about its fault.
        if name not in NO_SANITY:
            assert run.outcome(name, SANITY) == "pass", run.stdout
        for scenario in scenarios:
            assert run.outcome(name, scenario) == "fail", (name, scenario, run.stdout)
            assert run.outcome("control", scenario) == "pass", run.stdout
    last = run.stdout.strip().splitlines()[-1]
    assert (
        last
        == f"{run.report['summary']['passed']} passed, {run.report['summary']['failed']} failed"
    )


@pytest.mark.timeout(120)
def test_a_failure_says_what_was_sent_expected_and_received(suite: Any) -> None:
    command = BROKEN_CLIENTS["split-on-cr"][0]
    run = suite(f"--client=cr={command}", "--scenario", "echo-cr")
    result = run.result("cr", "echo-cr")
    text = "\n".join([result["message"], *result["details"]])
    assert "differs" in result["message"]
    assert "expected: b'a\\rb' (3 bytes)" in text
    assert "got:      b'a' (1 byte)" in text
    assert "first difference at byte 1: expected 0x0d, got end of message" in text
    assert "sent 6 messages" in text
    assert "stderr" in text
    assert "FAIL cr / echo-cr" in run.stdout


@pytest.mark.timeout(180)
def test_a_server_that_glues_tails_is_caught(suite: Any) -> None:
    run = suite(
        "--server=glue=python3 conformance/broken/glue-tail-server.py {in} {out}",
        "--scenario",
        f"{SANITY},server-partial-not-glued,server-sigkill-mid-message,server-restart-*",
    )
    assert run.status == 1, run.stdout
    assert run.outcome("server:glue", SANITY) == "pass", run.stdout
    assert run.outcome("server:glue", "server-partial-not-glued") == "fail", run.stdout
    assert run.outcome("server:glue", "server-sigkill-mid-message") == "fail", run.stdout
    # It also refuses to start over the FIFOs a killed instance left behind.
    assert run.outcome("server:glue", "server-restart-after-sigkill") == "fail", run.stdout
    glued = run.result("server:glue", "server-sigkill-mid-message")
    assert "fragment of a message" in "\n".join(glued["details"])


def test_every_fault_of_the_port_has_a_scenario_that_catches_it() -> None:
    source = (ROOT / "conformance" / "broken" / "port.py").read_text()
    assert set(re.findall(r'^    "([a-z0-9-]+)": "', source, re.MULTILINE)) == set(PORT_FAULTS)


@pytest.mark.timeout(240)
def test_a_correct_port_passes_every_server_scenario(suite: Any) -> None:
    """The scenarios ask for the protocol, not for the reference server's quirks."""
    run = suite(f"--server=port={PORT}", "--jobs=3")
    assert run.status == 0, run.stdout
    server_scenarios = [s.id for s in load_all() if s.applies_to("server")]
    assert sorted(r["scenario"] for r in run.report["results"]) == sorted(server_scenarios)


@pytest.mark.timeout(300)
def test_each_fault_of_the_port_fails_its_scenario(suite: Any) -> None:
    """Every plausible porting mistake loses, fragments, duplicates or reorders something a
    FIFO client sees, or fails to stop: each is caught, while the correct port passes."""
    by_scenario: dict[str, list[str]] = {}
    for fault, scenario in PORT_FAULTS.items():
        by_scenario.setdefault(scenario, []).append(fault)

    def play(scenario: str) -> Any:
        servers = [f"--server=port={PORT}"]
        servers += [f"--server={f}={PORT} --fault {f}" for f in by_scenario[scenario]]
        return suite(*servers, f"--scenario={scenario}", "--jobs=4", reports_name=scenario)

    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = dict(zip(by_scenario, pool.map(play, by_scenario)))
    for scenario, run in runs.items():
        assert run.outcome("server:port", scenario) == "pass", run.stdout
        for fault in by_scenario[scenario]:
            assert run.outcome(f"server:{fault}", scenario) == "fail", (fault, run.stdout)
