"""Connection rate: a bounded connect/exchange/close loop with failures counted by errno."""

import pytest
from measure_servers import ScriptedServer, close_at_once, echo, echo_corrupted, never_answer

from harness.measure.connrate import ConnRateRequest, run_connection_rate
from harness.measure.plan import ImpossibleLoad
from harness.transport import TcpAddress


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_connections_are_counted_and_timed(unix):
    with ScriptedServer(echo, unix=unix) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=0.3))
    assert not result.failures, result.describe()
    assert result.succeeded == result.attempted > 0
    assert result.histogram.count == result.succeeded
    assert result.conn_per_s == pytest.approx(result.succeeded / result.elapsed_s)


def test_the_count_bound_stops_the_loop():
    with ScriptedServer(echo) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=30,
                                                               max_connections=40))
    assert result.attempted == result.succeeded == 40


def test_a_refusing_server_is_a_bounded_storm_counted_by_errno():
    with ScriptedServer(echo) as address:
        port = address.port
    result = run_connection_rate(TcpAddress("127.0.0.1", port),
                                 ConnRateRequest(duration_s=30, max_failures=25))
    assert result.failures == {"ECONNREFUSED": 25} and result.stopped_early
    assert result.succeeded == 0 and "ECONNREFUSED" in result.first_failure


def test_closing_and_corrupting_servers_are_counted():
    with ScriptedServer(close_at_once) as address:
        closed = run_connection_rate(address, ConnRateRequest(duration_s=5, max_connections=20))
    assert closed.succeeded == 0 and closed.failed == 20
    assert set(closed.failures) <= {"EOF", "ECONNRESET", "EPIPE"}, closed.failures
    with ScriptedServer(echo_corrupted) as address:
        wrong = run_connection_rate(address, ConnRateRequest(duration_s=5, max_connections=20))
    assert wrong.failures == {"mismatch": 20}


def test_a_silent_server_costs_one_timeout_per_connection_not_a_hang():
    with ScriptedServer(never_answer) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=30, max_connections=3,
                                                               timeout_s=0.2))
    assert result.failures == {"timeout": 3} and result.succeeded == 0
    assert result.elapsed_s < 3


@pytest.mark.parametrize("size", [1, 1024, 1025, 65536])
def test_payloads_of_one_segment_and_more_come_back_whole_and_fast(size):
    with ScriptedServer(echo) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=5, max_connections=20,
                                                               payload_size=size))
    assert result.succeeded == 20, result.describe()
    assert result.histogram.value_at_ns(50) < 20_000_000  # no 40 ms delayed-ACK stall


@pytest.mark.parametrize("field, value, words", [
    ("duration_s", 0.0, "duration"), ("duration_s", -1.0, "duration"),
    ("max_connections", 0, "at least 1"), ("payload_size", 0, "payload size"),
    ("payload_size", -8, "payload size"), ("timeout_s", 0.0, "timeout")])
def test_impossible_requests_are_refused(field, value, words):
    with pytest.raises(ImpossibleLoad, match=words):
        ConnRateRequest(**{field: value}).validate()
