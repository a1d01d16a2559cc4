"""The benchmark's bookkeeping and command line (the benchmark itself is not a test)."""

import json
from pathlib import Path

import pytest

from sockspec.errors import UsageError
from sockspec.measure import bench
from sockspec.measure.bench import baselines
from sockspec.measure.bench.report import SCHEMA, Goal, compare, document, table
from sockspec.measure.latency import PingPongRequest, run_ping_pong
from sockspec.transport import TcpAddress
from sockspec.under_test.ports import PortAllocator


def sequence(values):
    iterator = iter(values)
    return lambda: next(iterator)


def test_goals_point_the_right_way():
    assert Goal("lower", 1.05).met(1.04) and not Goal("lower", 1.05).met(1.06)
    assert Goal("higher", 0.9).met(0.95) and not Goal("higher", 0.9).met(0.85)
    assert Goal("lower", 1.3).text() == "<= 1.3x" and Goal("higher", 0.9).text() == ">= 0.9x"


def test_medians_of_alternating_runs_give_the_ratio():
    calls = []

    def sockspec():
        calls.append("s")
        return [12.0, 10.0, 11.0][calls.count("s") - 1]

    def baseline():
        calls.append("b")
        return 10.0

    comparison = compare("x", "µs", "C", Goal("lower", 1.05), 3, sockspec, baseline,
                         warmup=0)
    assert calls == ["s", "b", "b", "s", "s", "b"]  # alternated: drifts hit both sides
    assert comparison.sockspec == 11.0 and comparison.baseline == 10.0
    assert comparison.ratio == pytest.approx(1.1)
    assert comparison.record()["met"] is False


def test_a_warm_up_run_of_each_side_is_discarded():
    # A cold start (the server's first 10k accepts, say) must not count against
    # whichever side happens to go first.
    comparison = compare("x", "s", "C", Goal("lower", 1.3), 2,
                         sequence([9.0, 1.0, 1.2]), sequence([5.0, 1.0, 1.0]))
    assert comparison.sockspec_runs == [1.0, 1.2] and comparison.baseline_runs == [1.0, 1.0]
    assert comparison.ratio == pytest.approx(1.1)
    assert comparison.record()["warmup"] == {"sockspec": [9.0], "baseline": [5.0]}


def test_the_document_has_the_schema_the_report_reads():
    comparison = compare("conn", "conn/s", "crr", Goal("higher", 0.9), 1,
                         sequence([950.0]), sequence([1000.0]), warmup=0)
    doc = document([comparison], 1, {"latency_vs_sockperf": "sockperf is not installed"})
    assert doc["schema"] == SCHEMA == "sockspec.bench/1"
    entry = doc["comparisons"][0]
    assert {k: entry[k] for k in ("name", "sockspec", "baseline", "unit", "ratio", "goal",
                                  "met")} == {"name": "conn", "sockspec": 950.0,
                                              "baseline": 1000.0, "unit": "conn/s",
                                              "ratio": 0.95, "goal": ">= 0.9x", "met": True}
    json.dumps(doc)  # plain data
    lines = table(doc)
    assert any("conn" in line and "yes" in line for line in lines)
    assert any("skipped: sockperf" in line for line in lines)


def test_baseline_output_fields_are_parsed():
    line = "c_crr addr=tcp:127.0.0.1:5 rst=0 conns=10 errors=0 conn_per_s=13540 p50_us=65.0"
    parsed = baselines.fields(line)
    assert parsed["conn_per_s"] == "13540" and parsed["addr"] == "tcp:127.0.0.1:5"


@pytest.mark.parametrize("argv, words", [
    (["--runs", "0"], "--runs must be at least 1"),
    (["--only", "nonsense"], "unknown comparison")])
def test_bad_options_are_one_line_and_exit_2(argv, words, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    with pytest.raises(UsageError):
        bench.parse(argv)


def test_missing_baseline_sources_are_refused(tmp_path):
    with pytest.raises(baselines.BenchError, match="no C baseline sources"):
        baselines.build(tmp_path / "absent", tmp_path)
    assert baselines.default_source_dir().name == "bench"
    assert isinstance(baselines.default_source_dir(), Path)


@pytest.mark.parametrize("engine", ["native", "python"])
def test_sockspec_speaks_sockperfs_framing_to_its_server(engine, tmp_path):
    # The sockperf comparison times sockspec and `sockperf pp` against one sockperf
    # server; that is only fair if the server answers sockspec's pings as its own.
    address = TcpAddress("127.0.0.1", PortAllocator().allocate("127.0.0.1"))
    exchange = baselines.sockperf_exchange(64)
    with baselines.running(baselines.sockperf_server_argv(address), address, "sockperf-sr",
                           tmp_path):
        framed = run_ping_pong(address, PingPongRequest(size=64, count=500, warmup=10,
                                                        timeout_s=5.0, engine=engine), exchange)
        plain = run_ping_pong(address, PingPongRequest(size=64, count=5, warmup=0,
                                                       timeout_s=1.0, engine=engine))
    assert framed.ok and framed.completed == 500, framed.describe()
    assert not plain.ok  # bytes without the header are not answered as an echo
