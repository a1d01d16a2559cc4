"""Connection rate: a bounded connect/exchange/close loop with failures counted by errno.

Every behaviour is checked with both engines (``engine`` fixture: native, python).
"""

from dataclasses import replace

import pytest
from measure_servers import (
    ScriptedServer,
    SignalTicker,
    close_at_once,
    echo,
    echo_corrupted,
    echo_delaying_each,
    never_answer,
    raise_from_a_signal_handler,
)

from sockspec.errors import UsageError
from sockspec.measure import native_connrate
from sockspec.measure.connrate import ConnRateRequest, run_connection_rate
from sockspec.measure.plan import ImpossibleLoad
from sockspec.transport import TcpAddress


@pytest.mark.parametrize("where", [{}, {"unix": True}, {"host": "::1"}],
                         ids=["tcp", "unix", "tcp6"])
def test_connections_are_counted_and_timed(where, engine):
    with ScriptedServer(echo, **where) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=0.3, engine=engine))
    assert not result.failures, result.describe()
    assert result.engine == engine
    assert result.succeeded == result.attempted > 0
    assert result.histogram.count == result.succeeded
    assert result.conn_per_s == pytest.approx(result.succeeded / result.elapsed_s)


def test_the_count_bound_stops_the_loop(engine):
    with ScriptedServer(echo) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=30,
                                                               max_connections=40,
                                                               engine=engine))
    assert result.attempted == result.succeeded == 40


def test_a_refusing_server_is_a_bounded_storm_counted_by_errno(engine):
    with ScriptedServer(echo) as address:
        port = address.port
    result = run_connection_rate(TcpAddress("127.0.0.1", port),
                                 ConnRateRequest(duration_s=30, max_failures=25,
                                                 engine=engine))
    assert result.failures == {"ECONNREFUSED": 25} and result.stopped_early
    assert result.succeeded == 0 and "ECONNREFUSED" in result.first_failure


def test_closing_and_corrupting_servers_are_counted(engine):
    with ScriptedServer(close_at_once) as address:
        closed = run_connection_rate(address, ConnRateRequest(duration_s=5, max_connections=20,
                                                                    engine=engine))
    assert closed.succeeded == 0 and closed.failed == 20
    assert set(closed.failures) <= {"EOF", "ECONNRESET", "EPIPE"}, closed.failures
    with ScriptedServer(echo_corrupted) as address:
        wrong = run_connection_rate(address, ConnRateRequest(duration_s=5, max_connections=20,
                                                                    engine=engine))
    assert wrong.failures == {"mismatch": 20}


def test_a_silent_server_costs_one_timeout_per_connection_not_a_hang(engine):
    with ScriptedServer(never_answer) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=30, max_connections=3,
                                                               timeout_s=0.2, engine=engine))
    assert result.failures == {"timeout": 3} and result.succeeded == 0
    assert result.elapsed_s < 15  # a hang bound: it did not wait out the 30 s duration


@pytest.mark.parametrize("size", [1, 1024, 1025, 65536])
def test_payloads_of_one_segment_and_more_come_back_whole_and_fast(size, engine):
    with ScriptedServer(echo) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=5, max_connections=20,
                                                               payload_size=size,
                                                               engine=engine))
    assert result.succeeded == 20, result.describe()
    # No delayed-ACK stall: one costs 40 ms (TCP_DELACK_MIN) each time, so most
    # connections would sit at or above it. How fast they are is the benchmark's business.
    assert result.histogram.value_at_ns(50) < 40_000_000


def test_more_connections_than_one_call_holds_are_all_counted(engine, monkeypatch):
    monkeypatch.setattr(native_connrate, "SAMPLES_PER_CALL", 7)
    with ScriptedServer(echo) as address:
        result = run_connection_rate(address, ConnRateRequest(duration_s=30, max_connections=50,
                                                               engine=engine))
    assert result.succeeded == result.attempted == result.histogram.count == 50


def test_failures_between_successes_keep_every_sample(engine):
    with ScriptedServer(echo) as address:
        port = address.port
    with ScriptedServer(echo) as address:
        # A server that comes and goes is beyond a test's reach; a count bound with
        # max_failures above it shows the loop resuming after each failure instead.
        result = run_connection_rate(TcpAddress("127.0.0.1", port),
                                     ConnRateRequest(duration_s=30, max_connections=5,
                                                     engine=engine))
        good = run_connection_rate(address, ConnRateRequest(duration_s=30, max_connections=5,
                                                            engine=engine))
    assert result.failures == {"ECONNREFUSED": 5} and not result.stopped_early
    assert result.attempted == 5 and good.succeeded == 5


def test_signals_neither_fail_nor_lose_connections(engine):
    with ScriptedServer(echo_delaying_each(0.002)) as address, \
            SignalTicker(0.0005, lambda calls: None) as ticker:
        result = run_connection_rate(address, ConnRateRequest(duration_s=30, max_connections=40,
                                                               engine=engine))
    assert not result.failures, result.describe()
    assert result.succeeded == result.attempted == 40
    assert ticker.calls >= 40  # handlers ran during the measurement


def test_a_signal_handler_that_raises_stops_the_loop_and_leaks_nothing(engine):
    request = ConnRateRequest(duration_s=30, engine=engine)
    frames, fds_left = raise_from_a_signal_handler(
        lambda address: run_connection_rate(address, replace(request, max_connections=1)),
        lambda address: run_connection_rate(address, request))
    assert frames & {"run_native_connection_rate", "_run_python"}, frames
    assert fds_left == 0  # the connection in hand was closed


def test_an_unknown_engine_is_refused():
    with pytest.raises(UsageError, match="unknown measurement engine 'c'"):
        ConnRateRequest(engine="c").validate()


@pytest.mark.parametrize("field, value, words", [
    ("duration_s", 0.0, "duration"), ("duration_s", -1.0, "duration"),
    ("max_connections", 0, "at least 1"), ("payload_size", 0, "payload size"),
    ("payload_size", -8, "payload size"), ("timeout_s", 0.0, "timeout")])
def test_impossible_requests_are_refused(field, value, words):
    with pytest.raises(ImpossibleLoad, match=words):
        ConnRateRequest(**{field: value}).validate()
