"""backlog: while the server cannot accept, new connections still complete their handshake.

The kernel completes TCP handshakes on its own and queues them until accept();
the queue holds backlog + 1 connections, backlog being listen()'s argument
capped by net.core.somaxconn (4096 here). Once it is full, further SYNs are
dropped and the client retries after 1 s, 2 s, 3 s (tcp_syn_linear_timeouts;
measured in shared/bench/RESULTS.md section 6). A server that is busy for a
moment (a GC pause, a burst of work in its accept loop) must not turn a burst
of clients into one-second stalls.
"""

from sockspec.catalogue import Chart, Family, scenario
from sockspec.drivers.load import connect_burst, probe_service
from sockspec.verdict import MUST, SHOULD, expect

BACKLOG = Family(
    name="backlog",
    behaviour="connections made while the server is not accepting wait in its accept queue",
    hint="pass a large backlog to listen() (SOMAXCONN, or at least 128): the kernel queues "
    "backlog+1 handshaken connections; past that it drops SYNs and clients retry after 1 s",
    charts=(Chart("accept_queue_depth", "accept-queue depth", "connections"),),
)

NOT_ON_UNIX = {"unix": "a Unix listener with a full accept queue fails connect() at once with "
                       "EAGAIN instead of dropping and retrying SYNs: a different behaviour"}
# 16 connections: listen(1) (queue of 2) and listen(5) (queue of 6) fail, any
# backlog >= 15 passes.
BURST_CONNECTIONS = 16
# Handshakes on loopback take microseconds; the window only has to outlast a
# busy machine. A dropped SYN is retried after 1 s into a queue that is still
# full (the server stays paused), so a longer window would change nothing.
HANDSHAKE_WINDOW_S = 1.5
PROBE_TIMEOUT = 5.0


@scenario(BACKLOG, fresh_server=True, not_on=NOT_ON_UNIX,
          level=SHOULD,
          reason="listen()'s backlog is a hint (POSIX); a queue that holds a burst of 16 "
          "(SOMAXCONN) is common practice, a small one costs clients 1 s SYN "
          "retries, not data")
def test_backlog_burst_while_paused(server, metrics):
    """16 connects made while the server is stopped all complete their handshake.

    Trigger: one request is served (so nothing earlier waits in the queue),
    then the server's process group is stopped (SIGSTOP) and 16 non-blocking
    connects start at once; the group is continued afterwards.
    Verdict: all 16 handshakes complete within 1.5 s; the number that did is
    recorded as accept_queue_depth (a lower bound when all did).
    Avoids: half-close and any exchange on the burst's connections: only handshakes are
    counted.
    """
    burst_while_paused(server, metrics, "the server did not serve a first request")


def burst_while_paused(server, metrics, unanswered: str) -> None:
    """Serve one request (``unanswered``: the failure if it is not), stop the server's
    process group, connect BURST_CONNECTIONS at once, and count the handshakes that
    complete: the accept queue's depth (also the generic scenario's body)."""
    warm_up = probe_service(server, PROBE_TIMEOUT)
    expect(warm_up.ok, unanswered, probe=warm_up.detail,
           level=MUST)  # basic's business: a server that serves nothing fails, not warns
    server.process.pause()
    try:
        burst = connect_burst(server.address, BURST_CONNECTIONS, HANDSHAKE_WINDOW_S)
    finally:
        server.process.resume()
    metrics.record("accept_queue_depth", burst.completed)
    expect(burst.completed == BURST_CONNECTIONS,
           f"only {burst.completed} of {BURST_CONNECTIONS} connections completed their "
           f"handshake while the server was not accepting: its accept queue holds "
           f"{burst.completed} (listen backlog about {max(burst.completed - 1, 0)})",
           handshakes_completed=burst.completed, still_in_syn_sent=burst.pending,
           failed=burst.failed or "none", waited_s=f"{burst.waited_s:.2f}",
           consequence="each further client's SYN is dropped; it retries after 1 s, 2 s, 3 s")
