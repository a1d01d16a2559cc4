"""Judging clients (sockspec.verdict.client): pure functions over a finished run."""

from __future__ import annotations

import pytest

from sockspec.process.client import CapturedOutput, ClientRun
from sockspec.targets.clients import builtin_client_targets
from sockspec.verdict import ScenarioFailed
from sockspec.verdict.client import (
    ExpectedOutput,
    expect_failure_reported,
    expect_finished_by,
    expect_message_on_failure,
    expect_success,
    output_mismatch,
)

CLIENT = builtin_client_targets()["reference-echo-client"]


def captured(data: bytes) -> CapturedOutput:
    output = CapturedOutput()
    for offset in range(0, len(data), 1000):
        output.add(data[offset:offset + 1000])
    return output


def finished(status: int | None, output: bytes = b"", *, stderr: str = "",
             timed_out: bool = False, ended_at: float = 1.0) -> ClientRun:
    return ClientRun(argv=["client"], exit_status=status, stdout=captured(output),
                     stderr_tail=stderr, started_at=0.0, ended_at=ended_at, time_limit=5.0,
                     timed_out=timed_out)


def failure(call) -> ScenarioFailed:
    with pytest.raises(ScenarioFailed) as caught:
        call()
    return caught.value


def test_success_with_every_byte_passes():
    data = bytes(range(256)) * 10
    expect_success(CLIENT, finished(0, data), ExpectedOutput.of(data), "x")


def test_success_with_a_different_byte_names_the_offset():
    data = bytes(range(256)) * 10
    wrong = data[:1000] + b"?" + data[1001:]
    found = failure(lambda: expect_success(CLIENT, finished(0, wrong), ExpectedOutput.of(data),
                                           "binary"))
    assert "different bytes, first difference at offset 1000" in found.summary
    assert found.facts["first_differing_offset"] == 1000


def test_short_output_says_how_short():
    data = b"a" * 500
    found = failure(lambda: expect_success(CLIENT, finished(0, data[:200]),
                                           ExpectedOutput.of(data), "echo"))
    assert "200 bytes where 500 were owed (300 bytes short)" in found.summary


def test_wrong_status_and_time_limit_fail_success():
    data = b"a"
    found = failure(lambda: expect_success(CLIENT, finished(1, data, stderr="client: no"),
                                           ExpectedOutput.of(data), "basic"))
    assert "exited with status 1" in found.summary and found.facts["client_said"] == "client: no"
    found = failure(lambda: expect_success(CLIENT, finished(None, timed_out=True),
                                           ExpectedOutput.of(data), "basic"))
    assert "did not finish within its stated limit" in found.summary


def test_failure_must_be_a_declared_failure_status():
    expect_failure_reported(CLIENT, finished(1), "reset", delivered=5, owed=10)
    found = failure(lambda: expect_failure_reported(CLIENT, finished(0, b"12345"), "reset",
                                                    delivered=5, owed=10))
    assert "reported success (status 0) although the server delivered only 5 of 10" \
        in found.summary
    found = failure(lambda: expect_failure_reported(CLIENT, finished(-11), "reset",
                                                    delivered=5, owed=10))
    assert "killed by SIGSEGV" in found.summary and "not one of its failure statuses" \
        in found.summary


def test_failure_needs_a_message_and_a_prompt_exit():
    expect_message_on_failure(finished(1, stderr="client: timed out"), "x")
    assert "without a word" in failure(
        lambda: expect_message_on_failure(finished(1), "x")).summary
    expect_finished_by(finished(0, ended_at=1.0), 2.0, "x", since=0.5, since_what="FIN")
    found = failure(lambda: expect_finished_by(finished(0, ended_at=4.0), 2.0, "x", since=0.5,
                                               since_what="the server's FIN"))
    assert "3.500 s after the server's FIN; the limit was 1.500 s" in found.summary


def test_expected_sparse_output_matches_a_streamed_one():
    marker = b"END"
    size = 3 * 1024 * 1024 + 7
    expected = ExpectedOutput.zeros_then(size, marker)
    observed = CapturedOutput()
    zeros = size - len(marker)
    chunk = bytes(1 << 20)
    while zeros:
        step = min(zeros, len(chunk))
        observed.add(chunk[:step])
        zeros -= step
    observed.add(marker)
    assert output_mismatch(observed, expected) is None
    assert expected.tail.endswith(marker) and len(expected.tail) == 4096
    small = ExpectedOutput.zeros_then(10, marker)
    assert small.head == small.tail == bytes(7) + marker
