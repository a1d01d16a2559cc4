"""client-accept-late: a server that accepts late, or whose backlog is full, never hangs a client.

A listener that has not called accept() yet still completes handshakes while
its accept queue has room, so connect() returns and the reply is just late.
When the queue is full (backlog + 1 connections on Linux), a SYN is dropped:
a TCP connect() waits, retransmitting the SYN after 1 s, 2 s, 3 s (shared/bench
RESULTS.md section 6); a Unix connect() fails at once with EAGAIN if
non-blocking and blocks if blocking. Either way the client must succeed once
the server accepts, or give up with a clear error within its stated limit.
"""

from sockspec.adversary import Listening
from sockspec.adversary.payloads import printable_bytes
from sockspec.catalogue import Family, client_scenario
from sockspec.verdict import MUST
from sockspec.verdict.client import (
    ExpectedOutput,
    expect_failure_reported,
    expect_message_on_failure,
    expect_success,
)

CLIENT_ACCEPT_LATE = Family(
    name="client-accept-late",
    behaviour="a late accept() or a full accept queue makes connect() wait and succeed, or "
    "fail clearly within the client's limit, never hang",
    hint="bound connect(): non-blocking connect() then poll() for POLLOUT with a timeout and "
    "check SO_ERROR (or settimeout() before connect()); on timeout exit with a failure status "
    "and say so",
)

PAYLOAD_BYTES = 500
FULL_QUEUE_BACKLOG = 1      # backlog 1: the queue is full with 2 connections


def accept_delay(timeout_s: float) -> float:
    """How late the server accepts: 1 s, or a third of the client's limit if that is less."""
    return min(1.0, timeout_s / 3)


def give_up_limit(timeout_s: float) -> float:
    """The client's stated limit plus slack for its start-up and exit on a busy machine."""
    return timeout_s + max(3.0, 0.5 * timeout_s)


@client_scenario(CLIENT_ACCEPT_LATE,
          level=MUST,
          reason="RFC 9293 3.5: the handshake completes before accept(); a client's "
          "exchange then simply waits for the server")
def test_client_waits_for_late_accept(client):
    """The server calls accept() only after 1 s (queue not full); the client still succeeds.

    Trigger: listen, wait min(1 s, timeout_s / 3), then accept and serve
    normally. Verdict: the success status and every byte.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    delay = accept_delay(client.timeout_s)
    server = client.serve(client.plan(data), Listening(accept_after_s=delay))
    run = client.run_against(server, data)
    expect_success(client.target, run, ExpectedOutput.of(data),
                   f"a server accepting after {delay:g} s")


@client_scenario(CLIENT_ACCEPT_LATE,
          level=MUST,
          reason="RFC 9293 3.8.1: a dropped SYN is retransmitted; the client succeeds once "
          "the queue drains (its message on failure: SHOULD)")
def test_client_connect_on_full_backlog(client):
    """The accept queue is full when the client connects and drains 1 s later; no hang.

    Trigger: listen(1), queue 2 connections of our own, start the client,
    accept after min(1 s, timeout_s / 3). Verdict: the success status with
    every byte, or a failure status with a message on stderr, within the
    client's stated limit plus slack.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    delay = accept_delay(client.timeout_s)
    listening = Listening(backlog=FULL_QUEUE_BACKLOG, fill_queue=True, accept_after_s=delay)
    server = client.serve(client.plan(data), listening)
    run = client.run_against(server, data, time_limit=give_up_limit(client.timeout_s))
    if run.exit_status == client.target.success_status or run.timed_out:
        expect_success(client.target, run, ExpectedOutput.of(data),
                       "connect() into a full accept queue drained after "
                       f"{delay:g} s")
        return
    expect_failure_reported(client.target, run, "connect() into a full accept queue",
                            delivered=0, owed=len(data))
    expect_message_on_failure(run, "connect() into a full accept queue")


@client_scenario(CLIENT_ACCEPT_LATE,
          level=MUST,
          reason="the client's stated timeout_s is its contract: it fails within it, never "
          "hangs (its message on failure: SHOULD)")
def test_client_connect_to_full_backlog_gives_up(client):
    """The accept queue stays full and nothing is accepted; the client fails within its limit.

    Trigger: listen(1), queue 2 connections of our own, never accept. Verdict:
    a failure status with a message on stderr before timeout_s plus slack.
    """
    data = printable_bytes(PAYLOAD_BYTES)
    listening = Listening(backlog=FULL_QUEUE_BACKLOG, fill_queue=True, accepts=False)
    server = client.serve(client.plan(data), listening)
    run = client.run_against(server, data, time_limit=give_up_limit(client.timeout_s))
    expect_failure_reported(client.target, run, "a full accept queue that is never served",
                            delivered=0, owed=len(data))
    expect_message_on_failure(run, "a full accept queue that is never served")
