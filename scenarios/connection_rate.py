"""connection-rate: connect, one small exchange, close, over and over for a fixed time."""

from sockspec.catalogue import Chart, Family, scenario
from sockspec.measure.connrate import ConnRateRequest, run_connection_rate
from sockspec.measure.settings import Size
from sockspec.thresholds import Measure
from sockspec.verdict import MUST, expect

SECONDS = Size("connection_rate_seconds", 1.0)

CONNECTION_RATE = Family(
    name="connection-rate",
    behaviour="a stream of short connections is served, every one, at a sensible rate",
    hint="keep the accept loop free of slow work: accept(), hand the connection over "
    "(thread, process or event loop) and return to accept(); do name lookups, logging "
    "and other per-connection work off that path, and close() every socket so descriptors "
    "do not run out",
    capture="on-request",  # a capture beside it costs 20-40 % of what it measures
    charts=(Chart("conn_per_s", "connection rate", "conn/s"),),
    sizes=(SECONDS,),
    # Figures (INFO): the default rate floor's miss is a warning; a user's threshold
    # (--threshold connection-rate.conn_per_s>=2000) is a failure when missed.
    measures=(
        Measure("conn_per_s", "conn_per_s", "higher", "conn/s", (">", 25.0),
                "only blocking work in the accept path (>= 40 ms per connection) falls "
                "under it"),
        Measure("p99_ms", "latency_p99_ms", "lower", "ms"),
    ),
)

# Bound on each connect() and each send/recv of the exchange.
EXCHANGE_TIMEOUT = 5.0
# The reference (thread per connection, Python) does ~5000 connections/s here and
# C epoll ~13500; a correct but slow server (2 ms of batching per reply) ~300/s,
# and far less on a loaded machine. 25/s is far below all of them, so only a server
# with blocking work in its accept path (40 ms or more per connection) falls under it.
RATE_FLOOR_PER_S = CONNECTION_RATE.measure("conn_per_s").default[1]  # the default: 25/s


@scenario(CONNECTION_RATE, profiles=("echo",), level=MUST,
          reason="MUST: every connection is accepted and echoed, none reset or refused "
          "(RFC 862, RFC 9293); the rate is a figure: INFO, default > 25/s")
def test_connection_rate(server, metrics):
    """For 1 s, connections each echo 1 byte and close; none fails and the rate beats 25/s.

    Trigger: a loop of socket(), connect(), send 1 byte, read it back, close()
    (FIN) for SOCKSPEC_CONNECTION_RATE_SECONDS (default 1 s).
    Verdict: zero failed connections (failures are counted by errno name) and
    more than 25 connections per second; conn_per_s and the per-connection
    latency percentiles are recorded.
    Avoids: half-close (close() only after the byte came back) and judging how the streams
    end.
    """
    request = ConnRateRequest(duration_s=SECONDS.value(),
                              timeout_s=EXCHANGE_TIMEOUT)
    result = run_connection_rate(server.address, request)
    for name, value in result.histogram.summary().metrics().items():
        metrics.record(name, value)
    latency = result.histogram.summary()
    metrics.judge("conn_per_s", result.conn_per_s,
                  "blocking work in the accept path (a name lookup, a sleep, a slow log)",
                  connections=result.succeeded, window_s=f"{result.elapsed_s:.2f}",
                  per_connection_latency=latency.describe())
    metrics.judge("p99_ms", latency.p99_ms, connections=result.succeeded,
                  per_connection_latency=latency.describe())
    expect(not result.failures,
           f"{result.failed} of {result.attempted} connections failed",
           failures_by_errno=result.failures, first_failure=result.first_failure,
           stopped_early=result.stopped_early, succeeded=result.succeeded,
           window_s=f"{result.elapsed_s:.2f}")
