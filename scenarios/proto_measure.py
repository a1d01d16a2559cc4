"""The measurement families for any declared protocol ([[protocol]]).

latency, latency-distribution, connection-rate, sustained-load,
concurrent-connections, slow-client-isolation and throughput, each judged as its
echo version is (same families, same figures, same default thresholds, same
SOCKSPEC_* sizes), with the declaration's own requests:

* the timed exchange is the declaration's first (the liveness probe's: it is
  answered on a fresh connection). When its request and reply are the same bytes
  every time, the compiled engines of sockspec.measure time it as they time the
  echo; otherwise each is rendered and judged by a Conversation (engine
  "conversation", said in the facts);
* the large transfers (throughput, slow-client-isolation) use the declared
  ``[protocol.large_reply]`` sequence.
"""

import random
import time

import pytest

from sockspec.catalogue import DECLARED, scenario
from sockspec.drivers.declared import (
    declared_connection_rate,
    declared_ping_pong,
    declared_throughput,
    describe_exchange,
    exchange_then_close,
    fill_with_requests,
    fixed_exchange,
    hold_declared,
)
from sockspec.drivers.load import run_in_sequence
from sockspec.drivers.streams import best_sample, samples_words
from sockspec.errors import HarnessError, SockspecError
from sockspec.measure.concurrent import hold_concurrent
from sockspec.measure.connrate import ConnRateRequest
from sockspec.measure.histogram import NS_PER_MS
from sockspec.measure.plan import ImpossibleLoad
from sockspec.measure.settings import check_server_fd_room, process_fd_soft_limit
from sockspec.process import describe_exit
from sockspec.scenarios import concurrent_connections as cc
from sockspec.scenarios import latency as lat
from sockspec.scenarios import measure_latency as dist
from sockspec.scenarios import slow_client_isolation as slow
from sockspec.scenarios import sustained_load as load
from sockspec.scenarios.concurrent_connections import CONCURRENT_CONNECTIONS
from sockspec.scenarios.connection_rate import CONNECTION_RATE, EXCHANGE_TIMEOUT, SECONDS
from sockspec.scenarios.latency import LATENCY
from sockspec.scenarios.measure_latency import LATENCY_DISTRIBUTION
from sockspec.scenarios.slow_client_isolation import SLOW_CLIENT_ISOLATION
from sockspec.scenarios.sustained_load import SUSTAINED_LOAD
from sockspec.scenarios.throughput import (
    PROGRESS_TIMEOUT,
    THROUGHPUT,
    TOTAL_BYTES,
    TRANSFER_DEADLINE,
)
from sockspec.transport import abort, connect, describe_os_error
from sockspec.verdict import MUST, SHOULD, expect, fail

# slow-client-isolation: the payload of each large-reply request the slow client
# sends (its declared size may be far larger; this is enough, repeated, to fill
# every buffer between it and the server).
SLOW_REPLY_BYTES = 256 * 1024


def _engine_facts(protocol, result) -> dict[str, object]:
    return {"exchange": describe_exchange(protocol), "engine": result.engine}


@scenario(LATENCY, profiles=(DECLARED,), needs=("keeps_connection",), level=MUST,
          reason="MUST: every request is answered as declared; the median is a figure: "
          "INFO, default threshold < 20 ms")
def test_proto_latency_median(server, metrics):
    """Twenty round trips of the first exchange on one connection have a median under 20 ms.

    Trigger: one connection (TCP_NODELAY on TCP); 3 warm-up round trips of the
    declaration's first exchange, then 20 measured, each reply read and judged
    before the next request. A median that misses its threshold is measured again
    on a new connection, up to 3 samples in all, and the best is judged.
    Verdict: every reply is as declared (MUST); the median is judged against
    latency.p50_ms (default < 20 ms: a reply written in pieces waits ~40 ms for a
    delayed ACK); p90, p99 and max are recorded.
    Avoids: half-close and judging how the stream ends: one connection, closed after the
    last reply.
    """
    protocol = server.protocol

    def sample():
        return declared_ping_pong(server.address, protocol, count=lat.MEASURED_ROUNDS,
                                  warmup=lat.WARM_UP_ROUNDS, timeout_s=lat.REPLY_TIMEOUT)

    # A failed round trip ends the sampling and is the one judged (failures sort first).
    result, results = best_sample(
        sample, key=lambda r: (r.ok, r.histogram.summary().p50_ms),
        enough=lambda r: not r.ok or metrics.meets("p50_ms", r.histogram.summary().p50_ms))
    summary = result.histogram.summary()
    for name, value in summary.metrics().items():
        metrics.record(name, value)
    facts = _engine_facts(protocol, result)
    metrics.record("latency_samples", len(results))
    facts["sample_medians_ms"] = samples_words([r.histogram.summary().p50_ms for r in results])
    expect(result.ok, f"a round trip failed: {result.describe()}",
           first_failure=result.first_failure, **facts)
    metrics.judge("p50_ms", summary.p50_ms,
                  "about 40 ms per round means a reply written in pieces waits for a "
                  "delayed ACK", latency=summary.describe(), **facts)
    for figure in ("p90_ms", "p99_ms", "max_ms"):
        metrics.judge(figure, getattr(summary, figure), latency=summary.describe(), **facts)


@scenario(LATENCY_DISTRIBUTION, profiles=(DECLARED,), needs=("keeps_connection",),
          level=MUST,
          reason="MUST: every request is answered as declared; the percentiles are figures: "
          "INFO, default p99.9 < 250 ms")
def test_proto_latency_distribution(server, metrics):
    """A 2000-round-trip ping-pong of the first exchange has no errors and p99.9 under 250 ms.

    Trigger: one connection (TCP_NODELAY on TCP), 200 warm-up round trips of the
    declaration's first exchange not recorded, then 2000 measured
    (SOCKSPEC_LATENCY_ROUND_TRIPS, SOCKSPEC_LATENCY_WARMUP), each reply judged;
    measurement stops after 5 s.
    Verdict: every reply as declared, no reset, EOF or timeout, and the p99.9
    round trip below 250 ms. Percentiles, max, count and CDF points are recorded.
    Avoids: half-close and judging how the stream ends: one connection, closed after the
    last reply.
    """
    protocol = server.protocol
    result = declared_ping_pong(server.address, protocol, count=dist.ROUND_TRIPS.value(),
                                warmup=dist.WARMUP.value(), timeout_s=dist.REPLY_TIMEOUT,
                                budget_s=dist.TIME_BUDGET)
    summary = result.histogram.summary()
    for name, value in summary.metrics().items():
        metrics.record(name, value)
    facts = _engine_facts(protocol, result)
    expect(result.ok, f"the ping-pong failed: {result.describe()}",
           round_trips_completed=result.completed, round_trips_planned=result.requested,
           failures_by_errno=result.failures or "none", first_failure=result.first_failure,
           **facts)
    stalled = result.histogram.count_above_ns(int(dist.STALL_CEILING_MS * NS_PER_MS))
    for figure in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
        metrics.judge(figure, getattr(summary, figure),
                      f"{stalled} of {summary.count} replies took longer than "
                      f"{dist.STALL_CEILING_MS:g} ms" if figure == "p999_ms" else "",
                      latency=summary.describe(), replies_over_ceiling=stalled, **facts)


@scenario(CONNECTION_RATE, profiles=(DECLARED,), needs=("exchange",), level=MUST,
          reason="MUST: every connection is accepted and answered as declared, none reset "
          "or refused (RFC 9293); the rate is a figure: INFO, default > 25/s")
def test_proto_connection_rate(server, metrics):
    """For 1 s, connections each run the first exchange and close; none fails, rate beats 25/s.

    Trigger: a loop of socket(), connect(), the declaration's first exchange
    (request sent whole, reply read and judged), close() (FIN), for
    SOCKSPEC_CONNECTION_RATE_SECONDS (default 1 s).
    Verdict: zero failed connections (counted by errno name, or mismatch) and
    more than 25 connections per second; conn_per_s and the per-connection
    latency percentiles are recorded.
    Avoids: half-close (close() only after the reply came) and judging how the streams end.
    """
    protocol = server.protocol
    request = ConnRateRequest(duration_s=SECONDS.value(), timeout_s=EXCHANGE_TIMEOUT)
    result = declared_connection_rate(server.address, protocol, request)
    latency = result.histogram.summary()
    for name, value in latency.metrics().items():
        metrics.record(name, value)
    facts = _engine_facts(protocol, result)
    metrics.judge("conn_per_s", result.conn_per_s,
                  "blocking work in the accept path (a name lookup, a sleep, a slow log)",
                  connections=result.succeeded, window_s=f"{result.elapsed_s:.2f}",
                  per_connection_latency=latency.describe(), **facts)
    metrics.judge("p99_ms", latency.p99_ms, connections=result.succeeded,
                  per_connection_latency=latency.describe(), **facts)
    expect(not result.failures,
           f"{result.failed} of {result.attempted} connections failed",
           failures_by_errno=result.failures, first_failure=result.first_failure,
           stopped_early=result.stopped_early, succeeded=result.succeeded,
           window_s=f"{result.elapsed_s:.2f}", **facts)


@scenario(SUSTAINED_LOAD, profiles=(DECLARED,), needs=("exchange",), fresh_server=True,
          level=MUST,
          reason="MUST: a server that stops serving after N clients has a leak or an "
          "overflow, a defect; the rate is a figure: INFO, no default threshold")
def test_proto_sustained_load(server, metrics):
    """1100 sequential connections, one exchange each, are all answered as declared.

    Trigger: 1100 connections one after another: connect, the declaration's first
    exchange, close().
    Verdict: every reply is as declared and the process is alive afterwards;
    conn_per_s is recorded.
    Avoids: half-close (close() only after each reply came) and judging the rate.
    """
    protocol = server.protocol
    exchange = f"connect, exchange {protocol.exchanges[0].name!r}, close()"
    run = run_in_sequence(load.CONNECTIONS,
                          lambda index: exchange_then_close(server.address, protocol,
                                                            load.CONNECT_TIMEOUT, index),
                          time_limit=load.RUN_TIME_LIMIT,
                          judge_rate_after=load.JUDGE_RATE_AFTER_S)
    if run.stopped_early:
        # Not a verdict on this family: the server is alive and serving, only slowly.
        pytest.skip(f"too slow to judge sustained load: {run.stopped_early}")
    metrics.judge("conn_per_s", run.per_second, connections=load.CONNECTIONS,
                  elapsed_s=f"{run.elapsed_s:.2f}", exchange=exchange)
    status = server.process.exit_status()
    state = "running" if status is None else describe_exit(status)
    if run.failure:
        fail(f"the server stopped serving after {run.completed} of {load.CONNECTIONS} "
             "sequential connections", first_failure=run.failure, exchange=exchange,
             elapsed_s=f"{run.elapsed_s:.2f}", server_process=state)
    expect(server.alive(), f"the server died after serving {load.CONNECTIONS} connections",
           exchange=exchange, server_process=state)


@scenario(CONCURRENT_CONNECTIONS, profiles=(DECLARED,), needs=("concurrent",),
          fresh_server=True, needs_process_control=False, level=MUST,
          reason="MUST: each connection is answered as declared; how many are served at "
          "once is a figure: INFO, default all of them")
def test_proto_concurrent_connections(server, metrics):
    """500 connections opened and held at once each get the first exchange's declared reply.

    Trigger: SOCKSPEC_CONCURRENT_CONNECTIONS (default 500) connections, each
    sending the declaration's first request and waiting for its reply, all held
    open until every one is verified. A fixed exchange (the same bytes every
    time) goes through the epoll holder of the echo version (at most 100
    unverified at a time, large counts over several generator processes); any
    other is rendered and judged per connection, the connections opened first and
    the exchanges run in turn while all stay open.
    Verdict: no connection gets a reply other than the declared one (MUST); the
    share verified within 8 s is judged against concurrent-connections.verified_pct
    (default >= 100; a miss of the default is a warning); setup time and the
    server's RSS growth per connection are recorded.
    Avoids: half-close (no FIN before each reply is verified) and judging how the streams
    end.
    """
    protocol = server.protocol
    wanted = cc.CONNECTIONS.value()
    managed = server.managed_process
    check_server_fd_room(wanted, process_fd_soft_limit(managed.pid) if managed else None)
    fixed = fixed_exchange(protocol)
    exchange = describe_exchange(protocol)
    rss = managed.rss_bytes if managed is not None else None
    try:
        if fixed is not None:
            result = hold_concurrent([server.address], wanted, inflight=cc.IN_FLIGHT,
                                     timeout_s=cc.SETUP_DEADLINE, rss_sampler=rss,
                                     message=fixed.message, reply=fixed.reply)
            hold, generators = result.hold, result.plan.generators
            if result.server_bytes_per_conn is not None:
                metrics.record("server_bytes_per_conn", result.server_bytes_per_conn)
        else:
            hold = hold_declared(server.address, protocol, wanted, timeout_s=cc.SETUP_DEADLINE)
            generators = 1
    except ImpossibleLoad as exc:
        raise HarnessError(f"the harness cannot generate this load here: {exc}") from exc
    except OSError as exc:
        if exc.errno not in cc.HARNESS_OUT_OF_FDS:
            raise
        raise HarnessError("the harness's load generator could not start: "
                           f"{describe_os_error(exc)}") from exc
    own = {name: n for name, n in hold.failures.items() if name in cc.HARNESS_FD_ERRORS}
    if own:
        raise HarnessError(f"the harness's load generator ran out of descriptors ({own}); "
                           f"first failure: {hold.first_failure}")
    facts = dict(established=hold.established, failures_by_errno=hold.failures,
                 first_failure=hold.first_failure, setup_s=f"{hold.setup_s:.2f}",
                 deadline_s=cc.SETUP_DEADLINE, generators=generators, exchange=exchange)
    metrics.judge("verified_pct", 100.0 * hold.verified / wanted,
                  f"{hold.verified} of {wanted} concurrent connections were verified "
                  f"within {cc.SETUP_DEADLINE:g} s", **facts)
    metrics.judge("verified", hold.verified, **facts)
    metrics.judge("setup_s", hold.setup_s, **facts)
    mismatched = hold.failures.get("mismatch", 0)
    expect(not mismatched,
           f"{mismatched} of {wanted} concurrent connections got a reply other than the "
           "declared one", **facts)


@scenario(SLOW_CLIENT_ISOLATION, profiles=(DECLARED,), needs=("concurrent", "large_reply"),
          fresh_server=True, needs_process_control=False, level=SHOULD,
          reason="no RFC requires one client's stall to leave others unaffected; "
          "per-connection isolation is common practice")
def test_proto_slow_client_isolation(server, metrics):
    """Another client's exchange is answered within 2 s while one client does not read.

    Trigger: a slow client runs the large-reply sequence's earlier exchanges, then
    sends its last request (256 KiB payloads) over and over without reading a
    reply, until the server stops taking its bytes (up to 64 MiB) and, for 0.5 s,
    sends it nothing either, and stays connected; a second client then connects
    and runs the declaration's first exchange.
    Verdict: that reply comes back as declared within 2 s. (A server of its own:
    the slow client leaves one of its connections stuck in send() until the reset
    that ends the scenario.)
    Avoids: half-close (the reply is read before close(); the slow client never sends a FIN).
    """
    protocol = server.protocol
    slow_sock = connect(server.address, slow.CONNECT_TIMEOUT)
    try:
        fill = fill_with_requests(slow_sock, protocol, size=SLOW_REPLY_BYTES,
                                  timeout=slow.CONNECT_TIMEOUT,
                                  max_bytes=slow.SLOW_CLIENT_MAX_BYTES,
                                  stall_s=slow.FILL_STALL_S, time_limit=slow.FILL_TIME_LIMIT,
                                  rng=random.Random(0))
        stuck = slow.wait_until_stuck(slow_sock, fill.blocked)
        started = time.perf_counter()
        try:
            exchange_then_close(server.address, protocol, slow.PING_LIMIT_S, seed=1)
            problem = None
        except SockspecError as exc:
            problem = str(exc)
        ping_s = time.perf_counter() - started
    finally:
        abort(slow_sock)
    metrics.record("ping_beside_slow_client_ms", ping_s * 1000)
    expect(problem is None and ping_s <= slow.PING_LIMIT_S,
           f"exchange {protocol.exchanges[0].name!r} was not answered within "
           f"{slow.PING_LIMIT_S:g} s while another client did not read",
           ping=problem or f"answered after {ping_s:.2f} s",
           slow_client=fill.describe() + stuck)


@scenario(THROUGHPUT, profiles=(DECLARED,), needs=("large_reply",), level=MUST,
          reason="MUST: every reply is as declared, byte for byte (RFC 9293 reliable "
          "stream); the rate is a figure: INFO, no default threshold")
def test_proto_throughput(server, metrics):
    """64 MiB of large replies on one connection all arrive exactly as declared.

    Trigger: one connection; the [protocol.large_reply] sequence run over and over
    (one pseudo-random payload of its declared size), each reply read and judged
    before the next request, until the replies carry SOCKSPEC_THROUGHPUT_BYTES
    (default 64 MiB).
    Verdict: every reply as declared (exact bytes), none cut short, within 60 s;
    throughput_gbps (Gbit/s of reply payload) is recorded.
    Avoids: half-close (no FIN: each reply is read whole) and judging how the stream ends.
    """
    protocol = server.protocol
    total = TOTAL_BYTES.value()
    result = declared_throughput(server.address, protocol, total, timeout_s=PROGRESS_TIMEOUT,
                                 deadline_s=TRANSFER_DEADLINE, rng=random.Random(0))
    metrics.judge("gbps", result.gbit_per_s)
    expect(result.verified, f"large replies not intact: {result.describe()}",
           sequence=", ".join(protocol.large_reply.exchanges),
           payload_bytes=protocol.large_reply.size, **result.facts)
