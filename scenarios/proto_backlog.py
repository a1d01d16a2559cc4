"""backlog, for any declared protocol: while the server cannot accept, connections still complete."""

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.load import connect_burst, probe_service
from sockspec.scenarios.backlog import (
    BACKLOG,
    BURST_CONNECTIONS,
    HANDSHAKE_WINDOW_S,
    NOT_ON_UNIX,
    PROBE_TIMEOUT,
)
from sockspec.verdict import MUST, SHOULD, expect


@scenario(BACKLOG, profiles=(DECLARED,), needs=("exchange",), fresh_server=True,
          not_on=NOT_ON_UNIX,
          level=SHOULD,
          reason="listen()'s backlog is a hint (POSIX); a queue that holds a burst of 16 "
          "(SOMAXCONN) is common practice, a small one costs clients 1 s SYN retries")
def test_proto_backlog_burst_while_paused(server, metrics):
    """16 connects made while the server is stopped all complete their handshake.

    Trigger: the first declared exchange is answered (so nothing earlier waits in the
    queue), then the server's process group is stopped (SIGSTOP) and 16
    non-blocking connects start at once; the group is continued afterwards.
    Verdict: all 16 handshakes complete within 1.5 s; the number that did is recorded
    as accept_queue_depth (a lower bound when all did).
    Avoids: half-close and any exchange on the burst's connections: only handshakes
    are counted.
    """
    warm_up = probe_service(server, PROBE_TIMEOUT)
    expect(warm_up.ok, "the server did not answer the first declared exchange",
           probe=warm_up.detail, level=MUST)  # basic's business: not a SHOULD
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
