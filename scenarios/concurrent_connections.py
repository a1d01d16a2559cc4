"""concurrent-connections: many connections open at once, each verified, none refused."""

from sockspec.catalogue import Family, scenario
from sockspec.measure.concurrent import hold_concurrent
from sockspec.measure.settings import Size, check_connection_count
from sockspec.verdict import expect

CONNECTIONS = Size("concurrent_connections", 500)

CONCURRENT_CONNECTIONS = Family(
    name="concurrent-connections",
    behaviour="hundreds of connections held open at the same time are all served",
    hint="a fixed pool of worker threads, a select() loop (FD_SETSIZE 1024) or a low "
    "RLIMIT_NOFILE caps how many clients are served at once: serve each connection "
    "as it arrives (a thread each, or epoll with non-blocking sockets), raise the fd "
    "limit, and keep accepting while others are open",
    capture="on-request",  # a capture beside it costs 20-40 % of what it measures
    sizes=(CONNECTIONS,),
    check_sizes=check_connection_count,
)

# Connections started but not yet echoed, at most: below the listen backlog
# (128 is common), so a server that accepts promptly never overflows it.
IN_FLIGHT = 100
# All connections and their echoes complete within this; 500 take ~0.1 s here.
SETUP_DEADLINE = 8.0


@scenario(CONCURRENT_CONNECTIONS, profiles=("echo",), fresh_server=True,
          needs_process_control=False)
def test_concurrent_connections(server, metrics):
    """500 connections opened and held at once each get their own 8-byte echo.

    Trigger: SOCKSPEC_CONCURRENT_CONNECTIONS (default 500) non-blocking connects,
    at most 100 unverified at a time; each sends an 8-byte token (its number) and
    waits for it; all stay open until every one is verified. Large counts are
    spread over generator processes and source addresses 127.0.0.x (fd limit
    and ~14k connections per address pair), and refused up front if impossible.
    Verdict: every connection verified, zero failures (by errno: ECONNREFUSED,
    ECONNRESET, EOF, timeout, mismatch). Records setup time and the server's
    RSS growth per connection.
    """
    wanted = CONNECTIONS.value()
    rss = server.process.rss_bytes if server.managed_process is not None else None
    result = hold_concurrent([server.address], wanted, inflight=IN_FLIGHT,
                             timeout_s=SETUP_DEADLINE, rss_sampler=rss)
    metrics.record("concurrent_connections", result.hold.verified)
    metrics.record("setup_s", result.hold.setup_s)
    if result.server_bytes_per_conn is not None:
        metrics.record("server_bytes_per_conn", result.server_bytes_per_conn)
    expect(result.ok,
           f"{result.hold.verified} of {wanted} concurrent connections were verified",
           established=result.hold.established, failures_by_errno=result.hold.failures,
           first_failure=result.hold.first_failure,
           setup_s=f"{result.hold.setup_s:.2f}", deadline_s=SETUP_DEADLINE,
           generators=result.plan.generators)
