"""slow-client-isolation: a client that stops reading delays nobody else.

A client that sends without reading fills, in turn, its receive buffer, the
server's send buffer for it, the server's receive buffer and its own send
buffer; from then on the server's send() to it blocks. A server that does that
send in the one thread serving everybody (a select() loop with blocking
sockets) stops serving every other client until the slow one reads or leaves.
"""

import time

from sockspec.catalogue import Family, scenario
from sockspec.drivers.load import echo_then_close, fill_until_blocked, wait_until_still
from sockspec.errors import SockspecError
from sockspec.transport import abort, connect
from sockspec.verdict import SHOULD, expect

SLOW_CLIENT_ISOLATION = Family(
    name="slow-client-isolation",
    behaviour="a client that stops reading does not delay other clients",
    hint="never block the whole server in one client's send(): give each connection its own "
    "thread or process, or use non-blocking sockets with poll()/epoll and a per-connection "
    "output buffer, sending only when POLLOUT says there is room",
)

CONNECT_TIMEOUT = 5.0
# About 8 MiB fill every buffer between us and a TCP echo server here, about
# 200 KiB over a Unix socket; the cap only matters for a server that buffers
# without bound.
SLOW_CLIENT_MAX_BYTES = 64 * 1024 * 1024
FILL_STALL_S = 0.2              # no room for this long: the server's send() to us blocks
FILL_TIME_LIMIT = 10.0
# Then both queues of the slow connection must stand still this long (the server
# neither reads from it nor sends to it) before the second client comes: a server
# busy for a moment after the fill could otherwise still be between two send()s.
STILL_S = 0.5
# A ping takes well under a millisecond; 2 s tolerates a very busy machine and
# still catches a server that waits for the slow client (forever, or for an
# idle timeout of many seconds).
PING_LIMIT_S = 2.0
PING = b"sockspec ping beside a slow client\n"


def wait_until_stuck(slow, blocked: bool) -> str:
    """After a fill that ``blocked``: wait (wait_until_still, STILL_S) until the server
    sends the slow client nothing either; what came of it, for the evidence."""
    if not blocked:
        return ""
    if wait_until_still(slow, STILL_S, FILL_TIME_LIMIT):
        return f", and sent it nothing for {STILL_S:g} s"
    return ", but went on sending to it"


@scenario(SLOW_CLIENT_ISOLATION, profiles=("echo",), fresh_server=True,
          needs_process_control=False,
          level=SHOULD,
          reason="no RFC requires one client's stall to leave others unaffected; "
          "per-connection isolation is common practice")
def test_slow_client_isolation_echo(server, metrics):
    """Another client's ping is answered within 2 s while one client does not read.

    Trigger: a slow client sends without ever reading until the server stops
    taking its bytes (up to 64 MiB) and, for 0.5 s, sends it nothing either, and
    stays connected; a second client then connects and sends one 35-byte line.
    Verdict: the line comes back whole within 2 s. (The server gets a server
    of its own: the slow client leaves one of its connections stuck in send()
    until the reset that ends the scenario.)
    Avoids: half-close (the ping is read before close(); the slow client never sends a FIN).
    """
    slow = connect(server.address, CONNECT_TIMEOUT)
    try:
        fill = fill_until_blocked(slow, max_bytes=SLOW_CLIENT_MAX_BYTES, stall_s=FILL_STALL_S,
                                  time_limit=FILL_TIME_LIMIT)
        stuck = wait_until_stuck(slow, fill.blocked)
        started = time.perf_counter()
        try:
            echo_then_close(server.address, PING, PING_LIMIT_S)
            problem = None
        except SockspecError as exc:
            problem = str(exc)
        ping_s = time.perf_counter() - started
    finally:
        abort(slow)
    metrics.record("ping_beside_slow_client_ms", ping_s * 1000)
    slow_client = (f"sent {fill.sent} bytes, read none; "
                   + ("the server stopped taking bytes" if fill.blocked
                      else f"still sending after {fill.elapsed_s:.1f} s")
                   + stuck
                   + (f"; send failed: {fill.error}" if fill.error else ""))
    expect(problem is None and ping_s <= PING_LIMIT_S,
           f"a ping was not answered within {PING_LIMIT_S:g} s while another client "
           "did not read",
           ping=problem or f"answered after {ping_s:.2f} s", slow_client=slow_client)
