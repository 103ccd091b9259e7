"""The suite has teeth: deliberately broken clients and a broken server are caught, each by
the scenarios aimed at its fault, while a correct client passes those same scenarios."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.tests.conftest import CONTROL

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
}
# No percent sign, backslash, CR, empty message or tail: every broken client passes it.
SANITY = "echo-utf8"


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
