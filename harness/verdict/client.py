"""Judging a client under test: its exit status, what it reported, how long it took.

Pure functions over a finished ClientRun and what was owed; no sockets. A
failed check raises ScenarioFailed (sockspec.verdict) with the facts a person
needs: expected and observed statuses, byte counts, the first differing offset,
digests, timings, the client's last words on stderr. The plugin adds the
command line and what the harness's server did (ClientUnderTest.facts).
"""

from __future__ import annotations

from dataclasses import dataclass

from sockspec.adversary.declared import reply_report
from sockspec.process.client import KEEP_FIRST_BYTES, KEEP_LAST_BYTES, CapturedOutput, ClientRun
from sockspec.reference.stream_digest import StreamDigest
from sockspec.targets.clients import ClientTarget
from sockspec.verdict import SHOULD, excerpt, fail, first_difference

ZERO_CHUNK = bytes(1024 * 1024)


@dataclass(frozen=True)
class ExpectedOutput:
    """What a client owes its user: the exact bytes the server sent, by length and digest."""

    length: int
    digest: str
    head: bytes        # the first KEEP_FIRST_BYTES
    tail: bytes        # the last KEEP_LAST_BYTES

    @classmethod
    def of(cls, data: bytes) -> ExpectedOutput:
        digest = StreamDigest()
        digest.update(data)
        return cls(len(data), digest.hexdigest(), data[:KEEP_FIRST_BYTES],
                   data[-KEEP_LAST_BYTES:])

    @classmethod
    def zeros_then(cls, size: int, marker: bytes) -> ExpectedOutput:
        """A sparse file's bytes: ``size - len(marker)`` zeros, then ``marker``."""
        digest = StreamDigest()
        zeros = size - len(marker)
        while zeros:
            step = min(zeros, len(ZERO_CHUNK))
            digest.update(memoryview(ZERO_CHUNK)[:step])
            zeros -= step
        digest.update(marker)
        head = (bytes(min(size - len(marker), KEEP_FIRST_BYTES)) + marker)[:KEEP_FIRST_BYTES]
        tail = (bytes(KEEP_LAST_BYTES) + marker)[-min(size, KEEP_LAST_BYTES):]
        return cls(size, digest.hexdigest(), head, tail)


def output_mismatch(observed: CapturedOutput, expected: ExpectedOutput) -> dict | None:
    """None when the output is exactly the expected bytes; else the facts of the difference."""
    if observed.missing:
        return {"summary": f"there is no output: {observed.describe()}",
                "expected_bytes": expected.length}
    if observed.length == expected.length and observed.digest == expected.digest:
        return None
    facts: dict[str, object] = {"expected_bytes": expected.length,
                                "reported_bytes": observed.length}
    offset = first_difference(expected.head, observed.head)
    if offset is not None and (offset < len(expected.head) and offset < len(observed.head)
                               or observed.complete_in_head):
        facts["first_differing_offset"] = offset
        facts["expected_there"] = excerpt(expected.head, offset)
        facts["reported_there"] = excerpt(observed.head, offset)
    else:
        facts["note"] = f"the first {len(expected.head)} bytes agree"
        facts["expected_last_bytes"] = expected.tail[-32:].hex(" ")
        facts["reported_last_bytes"] = observed.tail[-32:].hex(" ")
    facts["expected_digest"] = expected.digest
    facts["reported_digest"] = observed.digest
    if observed.length != expected.length:
        shortfall = expected.length - observed.length
        what = f"{shortfall} bytes short" if shortfall > 0 else f"{-shortfall} bytes too many"
        summary = f"{observed.length} bytes where {expected.length} were owed ({what})"
    else:
        summary = f"the right length ({observed.length} bytes) but different bytes"
    if "first_differing_offset" in facts:
        summary += f", first difference at offset {facts['first_differing_offset']}"
    return {"summary": summary, **facts}


def expect_success(target: ClientTarget, run: ClientRun, expected: ExpectedOutput,
                   what: str) -> None:
    """The server behaved: the client must exit with its success status and report every byte."""
    _expect_finished(target, run, what)
    if run.exit_status != target.success_status:
        fail(f"{what}: the client {run.describe_exit()}, not with its success status "
             f"{target.success_status}",
             expected_output=f"{expected.length} bytes", client_said=run.stderr_lines())
    mismatch = output_mismatch(run.reported, expected)
    if mismatch is not None:
        summary = mismatch.pop("summary")
        fail(f"{what}: the client reported success, but its output is {summary}", **mismatch)


def expect_failure_reported(target: ClientTarget, run: ClientRun, what: str, *,
                            delivered: int, owed: int) -> None:
    """The server broke the exchange: the client must say so with a declared failure status."""
    _expect_finished(target, run, what)
    status = run.exit_status
    if status == target.success_status:
        fail(f"{what}: the client reported success (status {status}) although the server "
             f"delivered only {delivered} of {owed} bytes",
             client_reported=run.reported.describe())
    if not target.is_failure_status(status):
        fail(f"{what}: the client {run.describe_exit()}, which is not one of its failure "
             f"statuses ({target.describe_failure_statuses()})",
             client_said=run.stderr_lines())


def expect_message_on_failure(run: ClientRun, what: str) -> None:
    """A failure should come with a reason on stderr (a clear error, not silence).

    Level SHOULD: saying why is common practice (curl, wget), no RFC asks for it.
    """
    if not run.stderr_tail.strip():
        fail(f"{what}: the client failed ({run.describe_exit()}) without a word on stderr",
             level=SHOULD)


def expect_finished_by(run: ClientRun, moment: float, what: str, *, since: float,
                       since_what: str) -> None:
    """The client's exit must come no later than ``moment`` (time.monotonic())."""
    if run.ended_at > moment:
        fail(f"{what}: the client finished {run.ended_at - since:.3f} s after {since_what}; "
             f"the limit was {moment - since:.3f} s",
             client_exit=run.describe_exit())


def _expect_finished(target: ClientTarget, run: ClientRun, what: str) -> None:
    if run.timed_out:
        fail(f"{what}: the client did not finish within its stated limit "
             f"(timeout_s = {target.timeout_s:g}): still running after {run.time_limit:g} s, "
             f"stopped by the harness",
             client_reported_so_far=run.reported.describe())


# -- clients of a declared protocol ([[protocol]]; sockspec.adversary.declared) ----------


def expect_requests_declared(server, what: str) -> None:
    """Every request the client sent is a declared exchange whose reply the harness knows
    (else the client, or the declaration, is wrong; nothing else can be judged)."""
    problems = server.problems()
    if problems:
        more = {"further_problems": "; ".join(problems[1:])} if len(problems) > 1 else {}
        fail(f"{what}: {problems[0]}", **more)


def expect_declared_success(target: ClientTarget, run: ClientRun, server, what: str) -> None:
    """The server answered as declared: the client completed at least one exchange, exits
    with its success status and, when its table says ``report``, reported every reply."""
    expect_requests_declared(server, what)
    _expect_finished(target, run, what)
    replies = server.replies()
    if run.exit_status != target.success_status:
        fail(f"{what}: the client {run.describe_exit()}, not with its success status "
             f"{target.success_status}", replies_sent_whole=len(replies),
             client_said=run.stderr_lines())
    if not replies:
        fail(f"{what}: the client exited with its success status but completed no exchange "
             "(the harness's server answered no request of it)")
    if target.report is None:
        return
    expected = reply_report(replies, target.report)
    observed = run.reported
    if target.report == "replies_hex" and observed.complete_in_head and not observed.missing:
        # Hex reports are compared without spaces and case: "81 6869" is "816869".
        got = observed.head.translate(None, b" \t\r").lower()
        if got == expected:
            return
        observed = CapturedOutput(observed.source)
        observed.add(got)
    mismatch = output_mismatch(observed, ExpectedOutput.of(expected))
    if mismatch is not None:
        summary = mismatch.pop("summary")
        fail(f"{what}: the client reported success, but its report ({target.report}: "
             f"{len(replies)} replies) is {summary}", **mismatch)


def expect_declared_failure(target: ClientTarget, run: ClientRun, server, what: str) -> None:
    """The server broke the exchange (cut, reset, silence, no accept): the client must
    exit with a declared failure status."""
    expect_requests_declared(server, what)
    _expect_finished(target, run, what)
    status = run.exit_status
    sent = sum(log.sent for log in server.connections)
    owed = sum(log.owed for log in server.connections)
    if status == target.success_status:
        fail(f"{what}: the client reported success (status {status}) although the harness's "
             f"server delivered {sent} of the {owed} reply bytes owed so far",
             client_reported=run.reported.describe())
    if not target.is_failure_status(status):
        fail(f"{what}: the client {run.describe_exit()}, which is not one of its failure "
             f"statuses ({target.describe_failure_statuses()})",
             client_said=run.stderr_lines())
