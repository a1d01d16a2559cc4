"""sustained-load: the server keeps serving through a long run of connections.

Whatever a server keeps per connection and never gives back (a descriptor, a
thread, a buffer, an entry in a table) or counts with a too-small counter ends
it after some number of clients. 1100 sequential connections, each with one
short exchange, cross the round numbers (256, 512, 1000, 1024) where such
limits usually sit. The rate is recorded as conn_per_s; it is not judged (the
connection-rate family does that).
"""

from functools import partial

import pytest

from sockspec.catalogue import Chart, Family, scenario
from sockspec.drivers.load import echo_then_close, get_then_close, run_in_sequence
from sockspec.process import describe_exit
from sockspec.thresholds import Measure
from sockspec.verdict import MUST, expect, fail

SUSTAINED_LOAD = Family(
    name="sustained-load",
    behaviour="the server serves a long run of connections, one after another, and lives",
    hint="nothing may accumulate per connection: close every socket, let every thread end "
    "(or reuse a bounded pool), free every buffer; a crash after N clients is usually a "
    "leak, a fixed-size table, or a counter that overflows",
    capture="on-request",  # a capture beside it costs 20-40 % of what it measures
    charts=(Chart("conn_per_s", "connection rate", "conn/s"),),
    # A figure (INFO) with no default: reported, judged only against the user's
    # threshold (--threshold sustained-load.conn_per_s>=500), whose miss is a failure.
    measures=(Measure("conn_per_s", "conn_per_s", "higher", "conn/s"),),
)

CONNECTIONS = 1100
CONNECT_TIMEOUT = 5.0
# 1100 connections take about half a second here; the budget only stops a
# server far too slow to judge in reasonable time (connection-rate judges speed).
RUN_TIME_LIMIT = 30.0
JUDGE_RATE_AFTER_S = 3.0
PAYLOAD = b"sockspec sustained-load\n"
SMALL_FILE = "sustained.txt"
SMALL_BODY = b"sockspec sustained-load body\n" * 4


def _expect_all_served(server, metrics, one_connection, exchange: str) -> None:
    run = run_in_sequence(CONNECTIONS, one_connection, time_limit=RUN_TIME_LIMIT,
                          judge_rate_after=JUDGE_RATE_AFTER_S)
    if run.stopped_early:
        # Not a verdict on this family: the server is alive and serving, only slowly.
        pytest.skip(f"too slow to judge sustained load: {run.stopped_early}")
    metrics.judge("conn_per_s", run.per_second, connections=CONNECTIONS,
                  elapsed_s=f"{run.elapsed_s:.2f}", exchange=exchange)
    status = server.process.exit_status()
    state = "running" if status is None else describe_exit(status)
    if run.failure:
        fail(f"the server stopped serving after {run.completed} of {CONNECTIONS} sequential "
             "connections", first_failure=run.failure, exchange=exchange,
             elapsed_s=f"{run.elapsed_s:.2f}", server_process=state)
    expect(server.alive(), f"the server died after serving {CONNECTIONS} connections",
           exchange=exchange, server_process=state)


@scenario(SUSTAINED_LOAD, profiles=("echo",), fresh_server=True, level=MUST,
          reason="MUST: a server that stops serving after N clients has a leak or an "
          "overflow, a defect; the rate is a figure: INFO, no default threshold")
def test_sustained_load_echo(server, metrics):
    """1100 sequential connections, one short echo each, are all served.

    Trigger: 1100 connections one after another: connect, send 24 bytes, read
    the echo, close().
    Verdict: every echo comes back whole and the process is alive afterwards;
    conn_per_s is recorded.
    Avoids: half-close (close() only after each echo came back) and judging the rate.
    """
    one = partial(echo_then_close, server.address, PAYLOAD, CONNECT_TIMEOUT)
    _expect_all_served(server, metrics, lambda index: one(),
                       f"connect, {len(PAYLOAD)}-byte echo, close()")


@scenario(SUSTAINED_LOAD, profiles=("http",), fresh_server=True, level=MUST,
          reason="MUST: a server that stops serving after N clients has a leak or an "
          "overflow, a defect; the rate is a figure: INFO, no default threshold")
def test_sustained_load_http(server, metrics):
    """1100 sequential connections, one small GET each, are all served.

    Trigger: 1100 connections one after another: GET of a 116-byte file, read
    to EOF.
    Verdict: every response is 200 with the whole file and the process is
    alive afterwards; conn_per_s is recorded.
    Avoids: half-close (no FIN before each response is in) and judging the rate.
    """
    server.put_file(SMALL_FILE, SMALL_BODY)
    one = partial(get_then_close, server.address, f"/{SMALL_FILE}", SMALL_BODY, CONNECT_TIMEOUT)
    _expect_all_served(server, metrics, lambda index: one(),
                       f"GET of a {len(SMALL_BODY)}-byte file, read to EOF")
