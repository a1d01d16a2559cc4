"""The benchmark's comparisons: each returns a Comparison of medians (see bench_report).

Sizes follow shared/bench/RESULTS.md so the figures can be read against it.
"""

from __future__ import annotations

import array
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sockspec.measure.bench import baselines
from sockspec.measure.bench.report import Comparison, Goal, compare
from sockspec.measure.concurrent import hold_concurrent
from sockspec.measure.connrate import ConnRateRequest, run_connection_rate
from sockspec.measure.latency import Exchange, PingPongRequest, message_for, run_ping_pong
from sockspec.measure.native_loop import resolve_engine
from sockspec.measure.sockets import pinned
from sockspec.measure.throughput import write_pattern_file
from sockspec.process import tcp_port_listened
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.transport import TcpAddress
from sockspec.under_test.ports import PortAllocator

PIN_CPU = 1
MESSAGE_BYTES = 64
ROUND_TRIPS = 100_000
WARMUP = 5_000
CONN_RATE_SECONDS = 3.0
FILE_BYTES = 512 * 1024 * 1024
RECV_BUFFER = 1024 * 1024
LISTEN_WAIT_S = 10.0
# Unverified connections per generator. Each generator's connections spread over as
# many SO_REUSEPORT servers as there are generators, so each accept queue (backlog
# capped at somaxconn 4096) sees about this many at most. holdconns caps only
# connects in progress, which on loopback complete inside connect(): no cap at all.
HOLD_INFLIGHT = 3000


@dataclass
class BenchContext:
    binaries: dict[str, Path]
    work: Path
    ports: PortAllocator
    runs: int

    def address(self) -> TcpAddress:
        return TcpAddress("127.0.0.1", self.ports.allocate("127.0.0.1"))


def sockspec_p50_us(address: TcpAddress, engine: str = "auto",
                    exchange: Exchange | None = None) -> float:
    result = run_ping_pong(address, PingPongRequest(size=MESSAGE_BYTES, count=ROUND_TRIPS,
                                                    warmup=WARMUP, cpus=(PIN_CPU,),
                                                    engine=engine), exchange)
    if not result.ok:
        raise baselines.BenchError(f"sockspec ping-pong failed: {result.describe()}")
    return result.histogram.value_at_ns(50) / 1000


def sockspec_latency_against(ctx: BenchContext, name: str, tool: str, goal: Goal,
                             baseline: Callable[[TcpAddress], float], note: str,
                             engine: str = "auto") -> Comparison:
    """sockspec's pinned ping-pong p50 against echo_epoll (C) on CPU PIN_CPU, compared
    with ``baseline(address)`` measured in the same run."""
    address = ctx.address()
    with baselines.running(baselines.echo_epoll_argv(ctx.binaries, address), address,
                           "echo_epoll", ctx.work, cpu=PIN_CPU):
        return compare(name, "µs", tool, goal, ctx.runs,
                       lambda: sockspec_p50_us(address, engine),
                       lambda: baseline(address), note=note)


def latency_vs_pingpong(ctx: BenchContext) -> Comparison:
    return sockspec_latency_against(
        ctx, "latency_p50_vs_pingpong_pinned", "shared/bench/pingpong (C)", Goal("lower", 1.05),
        lambda address: baselines.pingpong_p50_us(ctx.binaries, address, MESSAGE_BYTES,
                                                  ROUND_TRIPS, WARMUP, PIN_CPU),
        note=f"{MESSAGE_BYTES}-byte TCP ping-pong against echo_epoll (C); client and "
             f"server on CPU {PIN_CPU}; {ROUND_TRIPS} round trips after {WARMUP} warm-up; "
             f"sockspec's {resolve_engine('auto')} engine")


def latency_vs_sockperf(ctx: BenchContext) -> Comparison:
    address = ctx.address()
    exchange = baselines.sockperf_exchange(MESSAGE_BYTES)
    with baselines.running(baselines.sockperf_server_argv(address), address, "sockperf-sr",
                           ctx.work, cpu=PIN_CPU):
        return compare(
            "latency_p50_vs_sockperf_pinned", "µs", "sockperf pp --tcp", Goal("lower", 1.05),
            ctx.runs, lambda: sockspec_p50_us(address, exchange=exchange),
            lambda: baselines.sockperf_p50_us(address, MESSAGE_BYTES, 3, PIN_CPU),
            note=f"both against one sockperf sr (sockspec speaking sockperf's framing), "
                 f"everything on CPU {PIN_CPU}; {MESSAGE_BYTES}-byte messages, --full-rtt; "
                 f"sockspec's {resolve_engine('auto')} engine")


def latency_python_engine_vs_pingpong(ctx: BenchContext) -> Comparison:
    return sockspec_latency_against(
        ctx, "latency_p50_python_engine_vs_pingpong", "shared/bench/pingpong (C)",
        Goal("lower", 1.15),
        lambda address: baselines.pingpong_p50_us(ctx.binaries, address, MESSAGE_BYTES,
                                                  ROUND_TRIPS, WARMUP, PIN_CPU),
        engine="python",
        note="as latency_p50_vs_pingpong_pinned, with the pure-CPython engine (what "
             "sockspec measures without numba)")


def bare_cpython_p50_us(address: TcpAddress) -> float:
    """The least any CPython client does per round trip: os.write, os.read and two clock
    reads, nothing checked or recorded beyond the sample. The floor under the python
    engine; what lies between it and C is the interpreter's, not sockspec's."""
    message = message_for(MESSAGE_BYTES)
    samples = array.array("q", bytes(8 * (WARMUP + ROUND_TRIPS)))
    with pinned((PIN_CPU,)), socket.create_connection(address.sockaddr, 5.0) as sock:
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd, size = sock.fileno(), len(message)
        write, read, clock = os.write, os.read, time.perf_counter_ns
        for index in range(WARMUP + ROUND_TRIPS):
            started = clock()
            write(fd, message)
            echo = read(fd, size)
            samples[index] = clock() - started
            if len(echo) != size:
                raise baselines.BenchError("the bare loop got a short read; its numbers "
                                           "would not be comparable")
    return statistics.median(samples[WARMUP:]) / 1000


def latency_vs_bare_cpython(ctx: BenchContext) -> Comparison:
    return sockspec_latency_against(
        ctx, "latency_p50_python_engine_vs_bare_cpython", "bare os.write/os.read loop (CPython)",
        Goal("lower", 1.02), bare_cpython_p50_us, engine="python",
        note=f"both against echo_epoll (C), client and server on CPU {PIN_CPU}; the "
             "baseline checks nothing, so this ratio is what the python engine's own work "
             "costs")


def reference_echo_vs_echo_epoll(ctx: BenchContext) -> Comparison:
    c_address, py_address = ctx.address(), ctx.address()
    reference = [sys.executable, "-m", "sockspec.reference.server", "--profile", "echo",
                 "-p", str(py_address.port)]

    def p50_of_a_fresh(argv: list[str], address: TcpAddress, name: str) -> float:
        # A new server process each run: a CPython process's p50 is steady within
        # it but depends on its randomised memory layout (1 process in 6 or so
        # runs ~15 % slower until it exits; none with ASLR off), so the median
        # must range over processes, not over runs of one.
        with baselines.running(argv, address, name, ctx.work, cpu=PIN_CPU):
            return sockspec_p50_us(address)

    return compare(
        "reference_echo_p50_vs_echo_epoll_pinned", "µs", "shared/bench/echo_epoll (C)",
        Goal("lower", 1.1), ctx.runs,
        lambda: p50_of_a_fresh(reference, py_address, "reference-echo"),
        lambda: p50_of_a_fresh(baselines.echo_epoll_argv(ctx.binaries, c_address), c_address,
                               "echo_epoll"),
        note="the sockspec client against the reference echo server (Python, a thread "
             f"per connection) and against echo_epoll; everything on CPU {PIN_CPU}; "
             "a fresh server process for every run")


def concurrent_case(total: int, processes: int, sources: int) -> Callable[[BenchContext],
                                                                          Comparison]:
    def case(ctx: BenchContext) -> Comparison:
        address = ctx.address()
        argv = baselines.echo_epoll_argv(ctx.binaries, address, reuseport=processes > 1)

        def sockspec() -> float:
            result = hold_concurrent([address], total, timeout_s=120, inflight=HOLD_INFLIGHT)
            if not result.ok:
                raise baselines.BenchError(f"sockspec concurrent: {result.describe()}")
            return result.hold.setup_s

        with baselines.running(argv, address, "echo_epoll", ctx.work, processes=processes):
            return compare(
                f"concurrent_{total // 1000}k_setup", "s", "shared/bench/holdconns (C)",
                Goal("lower", 1.3), ctx.runs, sockspec,
                lambda: baselines.holdconns_setup_s(ctx.binaries, address, total, processes,
                                                    sources),
                note=f"connect + one verified 8-byte echo per connection, all held; "
                     f"{processes} echo_epoll -R server(s); holdconns: {processes} "
                     f"process(es), {sources} source address(es); sockspec plans its own")
    return case


def connection_rate_case(name: str, engine: str, goal: float
                         ) -> Callable[[BenchContext], Comparison]:
    def case(ctx: BenchContext) -> Comparison:
        address = ctx.address()
        request = ConnRateRequest(duration_s=CONN_RATE_SECONDS, engine=engine)

        def sockspec() -> float:
            result = run_connection_rate(address, request)
            if result.failures:
                raise baselines.BenchError(f"sockspec connection rate: {result.describe()}")
            return result.conn_per_s

        with baselines.running(baselines.echo_epoll_argv(ctx.binaries, address), address,
                               "echo_epoll", ctx.work):
            return compare(
                name, "conn/s", "shared/bench/crr (C)", Goal("higher", goal), ctx.runs,
                sockspec,
                lambda: baselines.crr_conn_per_s(ctx.binaries, address, CONN_RATE_SECONDS),
                note=f"connect, 1-byte echo, close (FIN) for {CONN_RATE_SECONDS:g} s against "
                     f"echo_epoll; unpinned; sockspec's {resolve_engine(engine)} engine")
    return case


def receive_all(address: TcpAddress, request: bytes) -> tuple[int, float]:
    """Connect, send ``request``, read until EOF into one reused buffer: (bytes, seconds)."""
    buffer = bytearray(RECV_BUFFER)
    total, head = 0, None if request else 0
    started = time.perf_counter()
    with socket.create_connection(address.sockaddr, timeout=30) as sock:
        if request:
            sock.sendall(request)
        while count := sock.recv_into(buffer):
            if head is None:
                end = bytes(buffer[:count]).find(b"\r\n\r\n")
                head = end + 4 if end >= 0 else None
            total += count
    return total - (head or 0), time.perf_counter() - started


def sendfile_throughput(ctx: BenchContext) -> Comparison:
    root = ctx.work / "root"
    root.mkdir(exist_ok=True)
    path = root / "bench.bin"
    write_pattern_file(path, FILE_BYTES)
    py_address = ctx.address()
    reference = [sys.executable, "-m", "sockspec.reference.server", "--profile", "http",
                 "-p", str(py_address.port), "-r", str(root)]

    def reference_gbs() -> float:
        with pinned((PIN_CPU,)):
            got, seconds = receive_all(
                py_address, build_get_request("/bench.bin", host=host_header(py_address)))
        if got != FILE_BYTES:
            raise baselines.BenchError(f"reference http sent {got} of {FILE_BYTES} bytes")
        return got / seconds / 1e9

    def sf_server_gbs() -> float:
        address = ctx.address()
        server = subprocess.Popen(
            [str(ctx.binaries["sf_server"]), "-l", f"tcp:{address.hostport}", "-f", str(path),
             "-m", "sendfile", "-T", "120"], start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            os.sched_setaffinity(server.pid, {PIN_CPU})
            deadline = time.monotonic() + LISTEN_WAIT_S
            while not tcp_port_listened(address):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise baselines.BenchError("sf_server did not listen")
                time.sleep(0.01)
            with pinned((PIN_CPU,)):
                got, seconds = receive_all(address, b"")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(LISTEN_WAIT_S)
        return got / seconds / 1e9

    with open(path, "rb") as warm:  # page-cache warm for both
        while warm.read(RECV_BUFFER * 8):
            pass
    with baselines.running(reference, py_address, "reference-http", ctx.work, cpu=PIN_CPU):
        return compare(
            "reference_http_sendfile_gbs", "GB/s", "shared/bench/sf_server -m sendfile (C)",
            Goal("higher", 0.9), ctx.runs, reference_gbs, sf_server_gbs,
            note=f"the same {FILE_BYTES >> 20} MiB file (page-cache warm) to the same Python "
                 f"receiver (recv_into 1 MiB, no hashing); server and receiver on CPU {PIN_CPU}")


CASES: dict[str, Callable[[BenchContext], Comparison]] = {
    "latency_vs_pingpong": latency_vs_pingpong,
    "latency_vs_sockperf": latency_vs_sockperf,
    "latency_python_engine_vs_pingpong": latency_python_engine_vs_pingpong,
    "latency_vs_bare_cpython": latency_vs_bare_cpython,
    "reference_echo_vs_echo_epoll": reference_echo_vs_echo_epoll,
    "concurrent_10k": concurrent_case(10_000, 1, 1),
    "concurrent_50k": concurrent_case(50_000, 3, 4),
    "concurrent_100k": concurrent_case(100_000, 6, 8),
    "connection_rate": connection_rate_case("connection_rate", "auto", 0.9),
    "connection_rate_python_engine": connection_rate_case("connection_rate_python_engine",
                                                          "python", 0.85),
    "sendfile_throughput": sendfile_throughput,
}
