"""backlog, for any declared protocol: while the server cannot accept, connections still complete."""

from sockspec.catalogue import DECLARED, scenario
from sockspec.scenarios.backlog import BACKLOG, NOT_ON_UNIX, burst_while_paused
from sockspec.verdict import SHOULD


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
    burst_while_paused(server, metrics, "the server did not answer the first declared exchange")
