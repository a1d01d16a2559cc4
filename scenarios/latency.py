"""latency: small request/response exchanges are not stalled by Nagle plus delayed ACK."""

from sockspec.catalogue import Family, scenario
from sockspec.drivers.streams import LatencySummary
from sockspec.errors import SockspecError
from sockspec.reference.client import ping_pong
from sockspec.verdict import expect, fail

LATENCY = Family(
    name="latency",
    behaviour="small ping-pongs get prompt answers: no Nagle plus delayed-ACK stall",
    hint="write each reply with one send() (build it in a buffer, or use writev()/sendmsg() "
    "for several pieces), or set TCP_NODELAY: a second small write waits for the ACK of "
    "the first (Nagle), which the client delays by about 40 ms",
    cites="replies",
)

MESSAGE_BYTES = 100
# The first round trips of a connection are ACKed at once (quick-ACK mode at
# connection start), which would hide the stall; on this kernel it shows from
# the second round trip on.
WARM_UP_ROUNDS = 3
MEASURED_ROUNDS = 20
# A loopback round trip takes about 0.06 ms here; Nagle waiting for a delayed
# ACK takes about 44 ms (TCP_ATO_MIN is 40 ms). The bound sits between, with
# room for a loaded machine: it is the median of 20, so a few slow rounds cannot
# flake it.
MEDIAN_LIMIT_MS = 20.0
# Each wait for an echo; only a server that never answers comes near it.
REPLY_TIMEOUT = 5.0


@scenario(LATENCY, profiles=("echo",))
def test_echo_ping_pong_median(server, metrics):
    """Twenty 100-byte ping-pongs on one connection have a median round trip under 20 ms.

    Trigger: TCP_NODELAY on the client; 3 warm-up round trips, then 20 measured,
    each sending 100 bytes and waiting for their echo before the next (on Unix
    there is no Nagle, but a slow reply path shows the same way).
    Verdict: median below 20 ms (a Nagle plus delayed-ACK stall costs ~40 ms each);
    p50, p90, p99 and max are recorded as metrics.
    """
    try:
        rounds = ping_pong(server.address, MESSAGE_BYTES, WARM_UP_ROUNDS + MEASURED_ROUNDS,
                           timeout=REPLY_TIMEOUT, nodelay=True)
    except SockspecError as exc:
        fail("a ping-pong round trip failed", reason=str(exc), message_bytes=MESSAGE_BYTES,
             rounds_planned=WARM_UP_ROUNDS + MEASURED_ROUNDS)
    summary = LatencySummary.from_seconds(rounds[WARM_UP_ROUNDS:])
    for name, value in summary.as_metrics("latency").items():
        metrics.record(name, value)
    expect(
        summary.p50_ms < MEDIAN_LIMIT_MS,
        f"median round trip {summary.p50_ms:.1f} ms is not below {MEDIAN_LIMIT_MS:g} ms "
        "(about 40 ms per round means a reply written in pieces waits for a delayed ACK)",
        p50_ms=f"{summary.p50_ms:.2f}",
        p90_ms=f"{summary.p90_ms:.2f}",
        p99_ms=f"{summary.p99_ms:.2f}",
        max_ms=f"{summary.max_ms:.2f}",
        round_trips_ms=" ".join(f"{r * 1000:.1f}" for r in rounds[WARM_UP_ROUNDS:]),
        warm_up_round_trips_ms=" ".join(f"{r * 1000:.1f}" for r in rounds[:WARM_UP_ROUNDS]),
    )
