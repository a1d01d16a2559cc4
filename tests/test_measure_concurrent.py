"""Concurrent connections: one holder in-process, several over execnet, and 100k at once."""

import os
import signal
import time
from pathlib import Path

import pytest
from measure_servers import (
    SERVER_READY_TIMEOUT,
    ScriptedServer,
    close_at_once,
    echo,
    echo_corrupted,
    echo_in_two_pieces,
    never_answer,
    start_epoll_echo,
)

from sockspec.measure.concurrent import (
    ConnectionHolder,
    HoldRequest,
    HoldResult,
    hold_concurrent,
    merge_results,
    token_for,
)
from sockspec.measure.coordinator import (
    Coordinator,
    GeneratorError,
    merge_latency,
    ping_pong_params,
)
from sockspec.measure.latency import PingPongRequest
from sockspec.measure.plan import ImpossibleLoad

SETUP_TIMEOUT = 20.0


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_one_holder_verifies_every_connection(unix):
    with ScriptedServer(echo, unix=unix) as address:
        result = hold_concurrent([address], 300, inflight=50, timeout_s=SETUP_TIMEOUT)
    assert result.ok, result.describe()
    assert result.plan.generators == 1
    assert result.hold.established == result.hold.verified == 300


def test_connections_stay_open_until_released():
    with ScriptedServer(echo) as address:
        holder = ConnectionHolder(HoldRequest((str(address),), 50, timeout_s=SETUP_TIMEOUT))
        try:
            result = holder.open_all()
            assert result.verified == 50 and holder.held() == 50
        finally:
            holder.release()
        assert holder.held() == 0


def test_a_token_echoed_in_pieces_still_verifies():
    with ScriptedServer(echo_in_two_pieces(0.05)) as address:
        result = hold_concurrent([address], 20, timeout_s=SETUP_TIMEOUT)
    assert result.ok, result.describe()


@pytest.mark.parametrize("handler, kinds", [
    (close_at_once, {"EOF", "ECONNRESET"}), (echo_corrupted, {"mismatch"})])
def test_failures_are_counted_by_kind(handler, kinds):
    with ScriptedServer(handler) as address:
        result = hold_concurrent([address], 40, timeout_s=SETUP_TIMEOUT)
    assert not result.ok and result.hold.verified == 0
    assert set(result.hold.failures) <= kinds and result.hold.failed == 40


def test_a_silent_server_times_out_within_the_deadline():
    with ScriptedServer(never_answer) as address:
        started = time.monotonic()
        result = hold_concurrent([address], 30, timeout_s=0.5)
    assert result.hold.failures == {"timeout": 30}
    assert "echo not complete" in result.hold.first_failure
    assert time.monotonic() - started < SETUP_TIMEOUT  # bounded, not hung


def test_impossible_counts_are_refused_before_connecting():
    with pytest.raises(ImpossibleLoad, match="at least 1"):
        hold_concurrent(["tcp:127.0.0.1:9"], 0)
    with pytest.raises(ImpossibleLoad, match="RLIMIT_NOFILE"):
        hold_concurrent(["tcp:127.0.0.1:9"], 5_000_000)


def test_tokens_are_printable_and_distinct():
    tokens = {token_for(i) for i in range(10_000)}
    assert len(tokens) == 10_000 and all(len(t) == 8 and 0 not in t for t in tokens)


def test_merging_adds_counts_and_keeps_the_slowest_setup():
    merged = merge_results([HoldResult(10, 10, 9, {"timeout": 1}, "x", 0.1, 0.2),
                            HoldResult(5, 5, 5, {}, None, 0.3, 0.4)])
    assert (merged.requested, merged.established, merged.verified) == (15, 15, 14)
    assert merged.failures == {"timeout": 1} and merged.setup_s == 0.4


def test_two_execnet_generators_hold_and_merge():
    with ScriptedServer(echo) as address:
        result = hold_concurrent([address], 400, generators=2, in_process=False,
                                 timeout_s=SETUP_TIMEOUT)
    assert result.ok, result.describe()
    assert result.plan.generators == 2
    assert [s.count for s in result.plan.shares] == [200, 200]
    assert result.hold.verified == 400


def test_two_execnet_generators_merge_their_latency_histograms():
    with ScriptedServer(echo) as address, Coordinator(["popen", "popen"]) as coordinator:
        pids = coordinator.pids
        assert len(set(pids)) == 2 and os.getpid() not in pids
        params = [ping_pong_params(str(address), PingPongRequest(count=300 + 100 * i, warmup=10))
                  for i in range(2)]
        merged = merge_latency(coordinator.run("ping_pong", params, timeout_s=60))
    assert merged.ok, merged.failures
    assert merged.completed == merged.histogram.count == 300 + 400
    for pid in pids:  # the coordinator ended its generators
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def test_a_failing_generator_is_reported_in_one_line():
    with Coordinator(["popen"]) as coordinator, pytest.raises(GeneratorError, match="size"):
        coordinator.run("ping_pong", [ping_pong_params("tcp:127.0.0.1:9",
                                                       PingPongRequest(size=0))], 30)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def group_rss(pid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pid:
                    total += int((entry / "statm").read_text().split()[1]) * os.sysconf(
                        "SC_PAGE_SIZE")
            except (OSError, ValueError):
                pass
    return total


def test_100k_concurrent_connections_against_a_multi_process_python_server():
    """100 000 verified connections at once: 6 generators x 8 source addresses against
    7 SO_REUSEPORT processes of fixtures/servers/epoll_echo.py (no C needed)."""
    proc, port = start_epoll_echo(["-p", "0", "--processes", "7", "--lifetime", "300"])
    try:
        result = hold_concurrent([f"tcp:127.0.0.1:{port}"], 100_000, timeout_s=60,
                                 rss_sampler=lambda: group_rss(proc.pid))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(SERVER_READY_TIMEOUT)
    assert result.ok, result.describe()
    assert result.plan.generators == 6 and len(result.plan.sources) == 8
    assert result.hold.verified == 100_000
    assert result.server_bytes_per_conn is not None and result.server_bytes_per_conn > 0


def test_a_low_soft_fd_limit_is_raised_towards_the_hard_one():
    import resource

    from sockspec.measure.sockets import ensure_fd_room

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        ensure_fd_room(1000)  # what ConnectionHolder does before opening 1000 sockets
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 1000 + len(os.listdir(
            "/proc/self/fd"))
        ensure_fd_room(hard * 2)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
