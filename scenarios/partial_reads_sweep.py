"""partial-reads, swept: a request split into two segments at every byte offset is one stream.

A server that assumes some part of a request arrives in one recv() (the
method, the request line, the blank line ending the head) works on most
splits and fails on a few. Three fixed pieces can miss them; the sweep tries
them all: for each offset 1..n-1 of the profile's request (the echo message,
the HTTP GET head), one connection sends the bytes before the offset, pauses
so that the server's recv() returns them alone, then sends the rest. The
connections run a few at a time; the evidence lists every offset that failed.

An offset that failed among the others is tried again alone before it counts:
a split defect fails alone too (the split is the same), while a server that
cannot take a few connections at once (a listen(1) accept queue) is
concurrency's and backlog's defect, not this family's. The retries share one
time budget; an offset left untried still counts as failed.
"""

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sockspec.catalogue import scenario
from sockspec.drivers.streams import parse_small_response
from sockspec.errors import SockspecError
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.scenarios.partial_reads import PARTIAL_READS
from sockspec.transport import TcpAddress, connect, read_until_end, recv_exactly, send_all
from sockspec.verdict import MUST, expect

# With TCP_NODELAY the first piece leaves at once; this pause lets the server's
# recv() return it alone, even on a busy machine (as partial-reads' own pieces do).
PAUSE_AT_SPLIT_S = 0.1
CONNECTIONS_AT_ONCE = 8
REPLY_TIMEOUT = 5.0
SWEEP_TIME_LIMIT = 60.0
# Seconds the retries alone may take in all (each takes ~0.1 s when it passes).
RETRY_BUDGET_S = 20.0

ECHO_MESSAGE = b"split-point sweep: every offset\n"
SWEEP_FILE = "sweep.txt"
SWEEP_BODY = b"split at any byte, the request is still one request\n" * 2


def _http_request(server) -> bytes:
    return build_get_request(f"/{SWEEP_FILE}", host=host_header(server.address))


@dataclass(frozen=True)
class SplitOutcome:
    offset: int
    problem: str | None        # None: the exchange was right


def _split_exchange(server, request: bytes, offset: int, check) -> SplitOutcome:
    try:
        with connect(server.address, REPLY_TIMEOUT,
                     nodelay=isinstance(server.address, TcpAddress)) as sock:
            send_all(sock, request[:offset])
            time.sleep(PAUSE_AT_SPLIT_S)
            send_all(sock, request[offset:])
            return SplitOutcome(offset, check(sock))
    except (OSError, SockspecError) as exc:
        return SplitOutcome(offset, str(exc))


def _echo_check(sock: socket.socket) -> str | None:
    echoed = recv_exactly(sock, len(ECHO_MESSAGE))
    return None if echoed == ECHO_MESSAGE else f"echo came back different: {echoed!r}"


def _http_check(sock: socket.socket) -> str | None:
    data, end = read_until_end(sock, REPLY_TIMEOUT, limit=len(SWEEP_BODY) + 64 * 1024)
    response = parse_small_response(data)
    if response.head is not None and response.head.status == 200 \
            and response.body == SWEEP_BODY:
        return None
    return (f"{response.status_line}, {len(response.body)} of {len(SWEEP_BODY)} body bytes, "
            f"ended by {end.value}")


def _ranges(offsets: list[int]) -> str:
    spans: list[list[int]] = []
    for offset in offsets:
        if spans and offset == spans[-1][1] + 1:
            spans[-1][1] = offset
        else:
            spans.append([offset, offset])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _sweep(server, metrics, request: bytes, check) -> None:
    offsets = range(1, len(request))
    started = time.monotonic()
    with ThreadPoolExecutor(CONNECTIONS_AT_ONCE, thread_name_prefix="sweep") as pool:
        outcomes = list(pool.map(lambda k: _split_exchange(server, request, k, check), offsets))
    together = [o for o in outcomes if o.problem is not None]
    # The offsets that failed among the others, tried again one at a time.
    failed, retried = retry_alone(
        together, lambda outcome: _split_exchange(server, request, outcome.offset, check))
    metrics.record("split_offsets_tried", len(outcomes))
    metrics.record("split_offsets_failed", len(failed))
    shown = "; ".join(
        f"{o.offset} ({request[:o.offset][-8:]!r} | {request[o.offset:][:8]!r}): {o.problem}"
        for o in failed[:5])
    expect(not failed,
           f"the request failed when split into two segments at {len(failed)} of "
           f"{len(outcomes)} byte offsets: {_ranges([o.offset for o in failed])}",
           request=repr(request), failing_offsets=_ranges([o.offset for o in failed]),
           first_failures=shown + ("; ..." if len(failed) > 5 else ""),
           pause_at_split_s=PAUSE_AT_SPLIT_S, connections_at_once=CONNECTIONS_AT_ONCE,
           failed_among_others=len(together), retried_alone=retried,
           sweep_took_s=f"{time.monotonic() - started:.2f}")


def retry_alone(together: list, again, budget_s: float = RETRY_BUDGET_S) -> tuple[list, int]:
    """Each of ``together`` (outcomes with a ``problem``, failed among others) tried
    again alone by ``again(outcome)``, one at a time, within ``budget_s``: the ones that
    fail alone too (their new outcome) and those left untried (as they were); and how
    many were tried."""
    deadline = time.monotonic() + budget_s
    failed = []
    retried = 0
    for outcome in together:
        if time.monotonic() >= deadline:
            failed.append(outcome)
            continue
        retried += 1
        alone = again(outcome)
        if alone.problem is not None:
            failed.append(alone)
    return failed, retried


@scenario(PARTIAL_READS, profiles=("echo",), time_limit=SWEEP_TIME_LIMIT,
          level=MUST,
          reason="RFC 9293 3.8: TCP has no record boundaries; a message split at any "
          "offset is one stream")
def test_echo_split_point_sweep(server, metrics):
    """A 32-byte message split into two segments at every offset comes back whole each time.

    Trigger: 31 connections, 8 at a time; connection k sends the first k bytes,
    pauses 100 ms, then sends the rest. An offset that failed is tried again alone.
    Verdict: every offset gets exactly the message back, alone if not among the
    others; the evidence lists the offsets that did not.
    """
    _sweep(server, metrics, ECHO_MESSAGE, _echo_check)


@scenario(PARTIAL_READS, profiles=("http",), time_limit=SWEEP_TIME_LIMIT,
          level=MUST,
          reason="RFC 9293 3.8 and RFC 9112 2.2: a request head is parsed from a stream, "
          "split at any offset")
def test_http_split_point_sweep(server, metrics):
    """A GET head split into two segments at every offset gets a 200 and the file each time.

    Trigger: one connection per byte offset of the head (8 at a time); each
    sends the head's first k bytes, pauses 100 ms, then sends the rest. An offset
    that failed is tried again alone.
    Verdict: every offset gets status 200 and the file's exact bytes, alone if not
    among the others; the evidence lists the offsets that did not.
    """
    server.put_file(SWEEP_FILE, SWEEP_BODY)
    _sweep(server, metrics, _http_request(server), _http_check)
