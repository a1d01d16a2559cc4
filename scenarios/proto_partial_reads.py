"""partial-reads, for any declared protocol: a request that arrives in pieces is one message.

Three shapes of the same behaviour, each on every declared exchange (the
exchanges before it on the connection are sent whole, so captures and ``{n}``
are as declared; each exchange has its own connection, a few at a time):

- three pieces with pauses: the server's recv() returns each piece alone;
- one byte per segment: every recv() returns one byte;
- a split at every byte offset: one connection per offset sends the bytes before
  it, pauses, then the rest. A server that assumes some part of a message comes in
  one recv() (a verb, a length prefix) fails on a few offsets only; the evidence
  lists them. An offset that failed among the others is tried again alone before
  it counts (as the echo and http sweeps do): a split defect fails alone too, a
  server that cannot take a few connections at once is concurrency's and backlog's.
"""

import time

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import Tried, send_split, try_all, try_exchange, wire_of
from sockspec.scenarios.partial_reads import PARTIAL_READS
from sockspec.scenarios.partial_reads_sweep import _ranges, retry_alone
from sockspec.verdict import MUST, expect

# Long enough that the server's recv() returns each piece alone: the pieces leave at
# once (TCP_NODELAY) and loopback delivers in microseconds. Shorter than the echo
# family's 100 ms (a sweep makes one connection per offset of every exchange): a
# server not scheduled in time only merges a few pieces, it never fails falsely.
PAUSE_BETWEEN_PIECES_S = 0.05
# One-byte segments: the server reads each before the next leaves (it wakes in
# microseconds); short, as a request may be a few hundred bytes.
PAUSE_BETWEEN_BYTES_S = 0.005
# In three pieces and one byte per segment, each next piece also waits until the
# server has read the ones before, so a server the machine keeps from running past
# the pause still reads each alone; one that leaves a piece unread this long has
# stopped reading (or not accepted yet), and the rest goes without waiting.
READ_WAIT_S = 1.0
# Connections at once: within the accept queue of a textbook listen(5), so a small
# backlog (the backlog family's business) cannot make these fail.
CONNECTIONS_AT_ONCE = 6
REPLY_TIMEOUT = 5.0
SWEEP_TIME_LIMIT = 60.0
SHOWN_FAILURES = 5


def _expect_all_right(tried: list[Tried], summary: str, **facts) -> None:
    failed = [t for t in tried if t.problem is not None]
    shown = "; ".join(t.describe() for t in failed[:SHOWN_FAILURES])
    expect(not failed, f"{summary}: {len(failed)} of {len(tried)} exchanges went wrong",
           failed_exchanges=shown + ("; ..." if len(failed) > SHOWN_FAILURES else ""),
           **facts)


@scenario(PARTIAL_READS, profiles=(DECLARED,), needs=("exchange",),
          level=MUST,
          reason="RFC 9293 3.8: TCP has no record boundaries, recv() returns what arrived "
          "(POSIX)")
def test_proto_requests_in_three_pieces(server):
    """Each declared request sent in three pieces, 50 ms apart, gets its declared reply.

    Trigger: for each exchange, on its own connection (TCP_NODELAY): the request cut
    at a third and two thirds of its length, each piece its own segment, paused in
    between, each once the server has read the ones before (at most 1 s).
    Verdict: every reply matches its declaration.
    Avoids: half-close (no FIN before the reply is in) and judging how the stream ends.
    """
    protocol = server.protocol
    cases = []
    for index in range(len(protocol.exchanges)):
        size = len(wire_of(protocol, index))
        cases.append((index, (size // 3, 2 * size // 3)))
    tried = try_all(protocol, server.address, cases,
                    lambda index, cuts: send_split(cuts, PAUSE_BETWEEN_PIECES_S, READ_WAIT_S),
                    REPLY_TIMEOUT, CONNECTIONS_AT_ONCE)
    _expect_all_right(tried, "requests sent in 3 pieces were not answered as declared",
                      cut_at=", ".join(f"{t.name}: {t.variant}" for t in tried),
                      pause_between_pieces_s=PAUSE_BETWEEN_PIECES_S)


def _byte_by_byte(sock, wire: bytes) -> None:
    """The request cut at every offset: one byte per send()."""
    send_split(tuple(range(1, len(wire))), PAUSE_BETWEEN_BYTES_S, READ_WAIT_S)(sock, wire)


@scenario(PARTIAL_READS, profiles=(DECLARED,), needs=("exchange",),
          level=MUST,
          reason="RFC 9293 3.8: a segment may carry a single byte; recv() returns what "
          "arrived (POSIX)")
def test_proto_requests_one_byte_per_segment(server):
    """Each declared request sent one byte per segment gets its declared reply.

    Trigger: for each exchange, on its own connection (TCP_NODELAY): every byte of
    the request sent alone, 5 ms apart, each once the server has read the ones
    before (at most 1 s).
    Verdict: every reply matches its declaration.
    Avoids: half-close (no FIN before the reply is in) and judging how the stream ends.
    """
    protocol = server.protocol
    cases = [(index, f"{len(wire_of(protocol, index))} one-byte sends")
             for index in range(len(protocol.exchanges))]
    tried = try_all(protocol, server.address, cases, lambda index, _: _byte_by_byte,
                    REPLY_TIMEOUT, CONNECTIONS_AT_ONCE)
    _expect_all_right(tried, "requests sent one byte per segment were not answered as "
                      "declared", pause_between_bytes_s=PAUSE_BETWEEN_BYTES_S)


@scenario(PARTIAL_READS, profiles=(DECLARED,), needs=("exchange",),
          time_limit=SWEEP_TIME_LIMIT,
          level=MUST,
          reason="RFC 9293 3.8: TCP has no record boundaries; a request split at any "
          "offset is one message")
def test_proto_split_point_sweep(server, metrics):
    """Each declared request split into two segments at every offset gets its reply each time.

    Trigger: for each exchange and each offset k of its request (1 .. length-1), one
    connection sends the first k bytes, pauses 50 ms, then sends the rest; 6
    connections at a time. An offset that failed is tried again alone.
    Verdict: every connection gets the declared reply, alone if not among the others;
    the evidence lists, per exchange, the offsets that did not.
    Avoids: half-close (no FIN before the reply is in) and judging how the stream ends.
    """
    protocol = server.protocol
    cases = [(index, offset) for index in range(len(protocol.exchanges))
             for offset in range(1, len(wire_of(protocol, index)))]
    started = time.monotonic()
    tried = try_all(protocol, server.address, cases,
                    lambda index, offset: send_split((offset,), PAUSE_BETWEEN_PIECES_S),
                    REPLY_TIMEOUT, CONNECTIONS_AT_ONCE)
    together = [t for t in tried if t.problem is not None]
    failed, retried = retry_alone(together, lambda t: try_exchange(
        protocol, server.address, t.index, t.variant,
        send_split((t.variant,), PAUSE_BETWEEN_PIECES_S), REPLY_TIMEOUT))
    metrics.record("split_offsets_tried", len(tried))
    metrics.record("split_offsets_failed", len(failed))
    by_exchange: dict[str, list[int]] = {}
    for t in failed:
        by_exchange.setdefault(t.name, []).append(t.variant)
    offsets = "; ".join(f"{name}: {_ranges(found)}" for name, found in by_exchange.items())
    shown = "; ".join(t.describe() for t in failed[:SHOWN_FAILURES])
    expect(not failed,
           f"requests split into two segments failed at {len(failed)} of {len(tried)} "
           f"(exchange, offset) pairs: {offsets}",
           failing_offsets=offsets or "none",
           first_failures=shown + ("; ..." if len(failed) > SHOWN_FAILURES else ""),
           pause_at_split_s=PAUSE_BETWEEN_PIECES_S, connections_at_once=CONNECTIONS_AT_ONCE,
           failed_among_others=len(together), retried_alone=retried,
           sweep_took_s=f"{time.monotonic() - started:.2f}")
