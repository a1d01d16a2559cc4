"""Connection rate (netperf TCP_CRR): connect, one small exchange, close; repeat.

One loop per generator, for a fixed time or a maximum count, whichever comes
first. Each connection is timed from socket() to close(); failures are counted
by errno name (ECONNREFUSED, ECONNRESET, EADDRNOTAVAIL, EMFILE, timeout, EOF,
mismatch) instead of ending the run. A server that refuses everything would
turn the loop into a storm of instant failures, so the loop stops after
``max_failures`` of them and says so.

Two engines, as for latency: "native" (sockspec.measure.native_connrate, compiled
with numba: a C client's cost per connection) and "python"; "auto" takes
native when numba is installed.

With close_with_reset the client closes by RST (SO_LINGER 0) and leaves no
TIME_WAIT socket; by default it closes with FIN, as ordinary clients do.
Loopback with net.ipv4.tcp_tw_reuse=2 reuses TIME_WAIT ports for new
connects, so FIN closes do not exhaust the 28232 ephemeral ports.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from sockspec.measure.histogram import LatencyHistogram
from sockspec.measure.latency import Exchange
from sockspec.measure.native_loop import resolve_engine
from sockspec.measure.plan import ImpossibleLoad, check_cpus, check_positive
from sockspec.measure.sockets import (
    RST_LINGER,
    failure_name,
    pinned,
    resolve_destination,
    set_io_timeouts,
)
from sockspec.transport import Address, TcpAddress

DEFAULT_MAX_FAILURES = 1000
# Nagle holds a small segment back only while earlier data is unacknowledged, so a
# payload sent as one segment needs no TCP_NODELAY (one setsockopt less per connection).
NAGLE_FREE_BYTES = 1024


@dataclass(frozen=True)
class ConnRateRequest:
    duration_s: float = 1.0
    max_connections: int = 1_000_000
    payload_size: int = 1
    timeout_s: float = 5.0              # bound on connect and on each send/recv
    close_with_reset: bool = False
    max_failures: int = DEFAULT_MAX_FAILURES
    cpus: tuple[int, ...] | None = None
    engine: str = "auto"                # "native" (numba), "python", or native if installed

    def validate(self) -> None:
        check_positive("duration (seconds)", self.duration_s)
        check_positive("timeout (seconds)", self.timeout_s)
        if self.max_connections < 1:
            raise ImpossibleLoad(f"maximum connection count must be at least 1, "
                                 f"not {self.max_connections}")
        if not 1 <= self.payload_size <= 65536:
            raise ImpossibleLoad(f"payload size must be within 1..65536 bytes, "
                                 f"not {self.payload_size}")
        if self.max_failures < 1:
            raise ImpossibleLoad(f"max_failures must be at least 1, not {self.max_failures}")
        check_cpus(self.cpus, os.sched_getaffinity(0))
        resolve_engine(self.engine)

    def prepare(self) -> None:
        """Validate, and compile the native engine if it will run (before any clock)."""
        self.validate()
        if resolve_engine(self.engine) == "native":
            from sockspec.measure.native_connrate import compile_native_connrate

            compile_native_connrate()


@dataclass
class ConnRateResult:
    histogram: LatencyHistogram          # per successful connection, socket() to close()
    attempted: int
    succeeded: int
    elapsed_s: float
    failures: dict[str, int] = field(default_factory=dict)
    first_failure: str | None = None
    stopped_early: bool = False          # hit max_failures
    engine: str = "python"

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def conn_per_s(self) -> float:
        return self.succeeded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        text = (f"{self.succeeded} of {self.attempted} connections succeeded in "
                f"{self.elapsed_s:.2f} s ({self.conn_per_s:.0f}/s, {self.engine} engine)")
        if self.failures:
            text += f"; failures {self.failures}; first: {self.first_failure}"
        if self.stopped_early:
            text += "; stopped early after too many failures"
        return text


def run_connection_rate(address: str | Address, request: ConnRateRequest,
                        exchange: Exchange | None = None) -> ConnRateResult:
    """``exchange``: what each connection sends and the reply it expects (a declared
    protocol's request); by default an echo of ``request.payload_size`` bytes."""
    request.prepare()  # validated, and compiled before the clock starts
    target = resolve_destination(address)
    exchange = exchange or Exchange.echo(request.payload_size)
    if not exchange.message or not exchange.reply:
        raise ImpossibleLoad("a connection-rate exchange needs a message and a reply")
    with pinned(request.cpus):
        return _run(target, request, exchange)


def _run(target: Address, request: ConnRateRequest, exchange: Exchange) -> ConnRateResult:
    payload = exchange.message
    nodelay = isinstance(target, TcpAddress) and len(payload) > NAGLE_FREE_BYTES
    if resolve_engine(request.engine) == "native":
        return _run_native(target, request, exchange, nodelay)
    return _run_python(target, request, exchange, nodelay)


def _run_native(target: Address, request: ConnRateRequest, exchange: Exchange, nodelay: bool
                ) -> ConnRateResult:
    from sockspec.measure.native_connrate import run_native_connection_rate

    started = time.perf_counter_ns()
    run = run_native_connection_rate(
        target, exchange.message, request.timeout_s, nodelay, request.close_with_reset,
        started + int(request.duration_s * 1e9), request.max_connections,
        request.max_failures, reply=exchange.reply)
    elapsed = (time.perf_counter_ns() - started) / 1e9
    failures: dict[str, int] = {}
    for _, failure in run.failures:
        failures[failure.name] = failures.get(failure.name, 0) + 1
    first_failure = None
    if run.failures:
        number, failure = run.failures[0]
        first_failure = f"connection {number}: {failure.name} ({failure.detail})"
    histogram = LatencyHistogram()
    histogram.record_many(run.samples_ns)
    return ConnRateResult(histogram, run.attempted, len(run.samples_ns), elapsed, failures,
                          first_failure, stopped_early=len(run.failures) >= request.max_failures,
                          engine="native")


def _run_python(target: Address, request: ConnRateRequest, exchange: Exchange, nodelay: bool
                ) -> ConnRateResult:
    payload, reply = exchange.message, exchange.reply
    size = len(reply)
    buffer = bytearray(size)
    view = memoryview(buffer)
    family, sockaddr = target.family, target.sockaddr
    # socket.SocketType is the C socket type under socket.socket: the same calls without
    # the Python-level __init__ and close(), ~1 % of a loopback connection's cost.
    new_socket, stream = socket.SocketType, socket.SOCK_STREAM
    clock = time.perf_counter_ns
    samples: list[int] = []
    failures: dict[str, int] = {}
    first_failure = None
    attempted = 0
    started = clock()
    end = started + int(request.duration_s * 1e9)
    now = started
    while now < end and attempted < request.max_connections:
        attempted += 1
        began = now
        sock = new_socket(family, stream)
        try:
            set_io_timeouts(sock, request.timeout_s)
            sock.connect(sockaddr)
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(payload)
            got = 0
            while got < size:
                more = sock.recv_into(view[got:])
                if not more:
                    raise _Ended(got, size)
                got += more
            if buffer != reply:
                raise _Ended(got, size, mismatch=True)
            if request.close_with_reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
            sock.close()
            now = clock()
            samples.append(now - began or 1)
            continue
        except (OSError, _Ended) as exc:
            name = exc.name if isinstance(exc, _Ended) else failure_name(exc)
            failures[name] = failures.get(name, 0) + 1
            if first_failure is None:
                first_failure = f"connection {attempted}: {name} ({_text(exc)})"
            sock.close()
        except BaseException:  # a signal handler raised: close now, not when collected
            sock.close()
            raise
        now = clock()
        if sum(failures.values()) >= request.max_failures:
            break
    elapsed = (now - started) / 1e9
    histogram = LatencyHistogram()
    histogram.record_many(samples)
    return ConnRateResult(histogram, attempted, len(samples), elapsed, failures, first_failure,
                          stopped_early=sum(failures.values()) >= request.max_failures,
                          engine="python")


class _Ended(Exception):
    def __init__(self, got: int, size: int, *, mismatch: bool = False) -> None:
        self.name = "mismatch" if mismatch else "EOF"
        what = "echo differs from the payload" if mismatch else "peer closed before the echo"
        super().__init__(f"{what}: {got} of {size} bytes")


def _text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
