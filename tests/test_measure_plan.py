"""Limit planning: processes and source addresses for N connections; impossible loads refused."""

import math

import pytest

from sockspec.errors import UsageError
from sockspec.measure.plan import (
    LOOPBACK_V4_SOURCES,
    MAX_MESSAGE_BYTES,
    HostLimits,
    ImpossibleLoad,
    check_ping_pong,
    plan_connections,
    source_for,
)
from sockspec.measure.settings import Size, check_environment, family_sizes

# This machine: RLIMIT_NOFILE 20000 (hard), ports 32768-60999, plenty of memory.
HERE = HostLimits(fd_limit=20000, port_range=28232, mem_available=20 * 2**30)


def plan(total, *, destinations=1, transport="tcp", limits=HERE, pool=LOOPBACK_V4_SOURCES,
         generators=None):
    return plan_connections(total, destinations=destinations, transport=transport,
                            limits=limits, source_pool=pool, generators=generators)


def pair_counts(result):
    counts = {}
    for share in result.shares:
        for index in range(share.first_index, share.first_index + share.count):
            key = (source_for(index, result.destinations, result.sources),
                   index % result.destinations)
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_small_load_is_one_process_and_the_kernels_source():
    result = plan(500)
    assert result.generators == 1 and result.sources == ()
    assert result.shares[0].first_index == 0 and result.shares[0].count == 500


def test_100k_needs_six_processes_and_eight_sources_below_14k_per_pair():
    result = plan(100_000)
    assert result.generators == math.ceil(100_000 / 19_990) == 6
    assert len(result.sources) == 8 and result.sources[0] == "127.0.0.1"
    assert sum(s.count for s in result.shares) == 100_000
    assert all(s.count <= 19_990 for s in result.shares)
    firsts = [s.first_index for s in result.shares]
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert max(pair_counts(result).values()) <= 14_000


def test_more_destinations_need_fewer_sources():
    result = plan(100_000, destinations=4)
    assert len(result.sources) == 2
    assert max(pair_counts(result).values()) <= 14_000


def test_unix_sockets_need_no_sources_only_processes():
    result = plan(50_000, transport="unix", pool=())
    assert result.sources == () and result.generators == 3


def test_zero_or_negative_connections_are_refused():
    for total in (0, -5):
        with pytest.raises(ImpossibleLoad, match="at least 1"):
            plan(total)


def test_beyond_the_generator_cap_names_the_fd_limit():
    with pytest.raises(ImpossibleLoad, match=r"RLIMIT_NOFILE 20000.*at most 32"):
        plan(1_000_000)


def test_too_few_forced_generators_names_the_fd_limit():
    with pytest.raises(ImpossibleLoad, match=r"fd limit \(RLIMIT_NOFILE 20000"):
        plan(50_000, generators=2)


def test_beyond_the_source_addresses_names_the_port_range():
    few = LOOPBACK_V4_SOURCES[:2]
    with pytest.raises(ImpossibleLoad, match=r"ip_local_port_range has 28232 ports"):
        plan(60_000, pool=few, limits=HostLimits(20000, 28232, None, max_generators=64))


def test_ipv6_loopback_has_one_source_address():
    with pytest.raises(ImpossibleLoad, match="one source address|1 source address"):
        plan(30_000, transport="tcp6", pool=("::1",))
    assert plan(20_000, transport="tcp6", pool=("::1",)).sources == ()


def test_memory_is_checked_up_front():
    small = HostLimits(fd_limit=20000, port_range=28232, mem_available=2**30)
    with pytest.raises(ImpossibleLoad, match="kernel memory"):
        plan(100_000, limits=small)


def test_impossible_load_is_a_usage_error_exit_2():
    assert issubclass(ImpossibleLoad, UsageError)
    assert ImpossibleLoad("x").exit_status == 2


@pytest.mark.parametrize("size, count, warmup, rate, words", [
    (0, 10, 0, None, "at least 1 byte"),
    (-3, 10, 0, None, "at least 1 byte"),
    (MAX_MESSAGE_BYTES + 1, 10, 0, None, "deadlock"),
    (64, 0, 0, None, "round-trip count"),
    (64, 10, -1, None, "warm-up"),
    (64, 10, 0, 0.0, "rate"),
    (64, 10, 0, -100.0, "rate"),
])
def test_impossible_ping_pongs_are_refused_naming_the_limit(size, count, warmup, rate, words):
    with pytest.raises(ImpossibleLoad, match=words):
        check_ping_pong(size, count, warmup, rate)


def measurement_families():
    from sockspec.catalogue import families, load_catalogue

    return [f for f in families(load_catalogue()).values() if f.sizes]


def test_sizes_come_from_the_environment_and_are_checked():
    from sockspec.scenarios.concurrent_connections import CONCURRENT_CONNECTIONS
    from sockspec.scenarios.connection_rate import CONNECTION_RATE

    env = {"SOCKSPEC_CONCURRENT_CONNECTIONS": "1200", "SOCKSPEC_CONNECTION_RATE_SECONDS": "0.5"}
    assert family_sizes(CONCURRENT_CONNECTIONS, env) == {"concurrent_connections": 1200}
    assert family_sizes(CONNECTION_RATE, env) == {"connection_rate_seconds": 0.5}
    assert family_sizes(CONNECTION_RATE, {}) == {"connection_rate_seconds": 1.0}
    with pytest.raises(ImpossibleLoad, match="SOCKSPEC_THROUGHPUT_BYTES"):
        check_environment(measurement_families(), {"SOCKSPEC_THROUGHPUT_BYTES": "-1"})
    with pytest.raises(ImpossibleLoad, match="not a number"):
        check_environment(measurement_families(), {"SOCKSPEC_LATENCY_ROUND_TRIPS": "many"})
    assert Size("latency_warmup", 200, minimum=0).value({"SOCKSPEC_LATENCY_WARMUP": "0"}) == 0


def test_every_size_is_declared_by_the_family_that_reads_it():
    declared = {s.variable for f in measurement_families() for s in f.sizes}
    assert declared == {"SOCKSPEC_LATENCY_ROUND_TRIPS", "SOCKSPEC_LATENCY_WARMUP",
                        "SOCKSPEC_LATENCY_MESSAGE_BYTES", "SOCKSPEC_CONNECTION_RATE_SECONDS",
                        "SOCKSPEC_CONCURRENT_CONNECTIONS", "SOCKSPEC_THROUGHPUT_BYTES"}


def test_the_environment_check_refuses_what_this_host_cannot_do():
    check_environment(measurement_families(), {})
    with pytest.raises(ImpossibleLoad, match="RLIMIT_NOFILE"):
        check_environment(measurement_families(), {"SOCKSPEC_CONCURRENT_CONNECTIONS": "5000000"})
    with pytest.raises(ImpossibleLoad, match="deadlock"):
        check_environment(measurement_families(), {"SOCKSPEC_LATENCY_MESSAGE_BYTES": "1000000"})
