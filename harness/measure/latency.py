"""Ping-pong latency over one stream connection: closed loop and open loop.

Closed loop (sockperf ping-pong, netperf TCP_RR): send a message, read its
echo, repeat; each sample is one round trip. Warm-up round trips run first and
are not recorded.

Open loop (wrk2): requests are due at a fixed rate, request i at
``start + i / rate``. A sender that falls behind (because the server stalled)
sends late, and the latency of a request is measured from its *intended* send
time, so the requests that could not even be sent during a stall count the
stall. Without this, a closed loop records one slow sample for a one-second
stall and hides the hundreds of users a real client population would have
kept waiting ("coordinated omission"). The service time (from the actual
send) is kept alongside.

Samples go into a preallocated array during the run and into an HdrHistogram
afterwards. Two engines run both loops: "native" (compiled with numba,
sockspec.measure.native_loop: a C client's cost per round trip) and "python"
(os.write/os.read: ~0.4 µs more per round trip). "auto" takes native when numba
is installed.
"""

from __future__ import annotations

import array
import os
import time
from dataclasses import dataclass, field

from sockspec.errors import UsageError
from sockspec.measure.histogram import LatencyHistogram
from sockspec.measure.native_loop import (
    SPIN_BELOW_NS,
    NativeRun,
    compile_native_loops,
    resolve_engine,
    run_closed_loop,
    run_open_loop,
)
from sockspec.measure.plan import check_cpus, check_ping_pong, check_positive
from sockspec.measure.sockets import (
    failure_name,
    open_stream,
    pinned,
    resolve_destination,
    set_io_timeouts,
)
from sockspec.transport import Address

_NEVER = 1 << 62


@dataclass(frozen=True)
class PingPongRequest:
    size: int = 64
    count: int = 2000
    warmup: int = 200
    rate_per_s: float | None = None   # None: closed loop; else open loop at this rate
    timeout_s: float = 5.0            # bound on connect and on every single send/recv
    cpus: tuple[int, ...] | None = None
    budget_s: float | None = None     # stop measuring after this long (not a failure)
    engine: str = "auto"              # "native" (numba), "python", or native if installed

    def validate(self) -> None:
        check_ping_pong(self.size, self.count, self.warmup, self.rate_per_s)
        check_positive("timeout (seconds)", self.timeout_s)
        if self.budget_s is not None:
            check_positive("time budget (seconds)", self.budget_s)
        check_cpus(self.cpus, os.sched_getaffinity(0))
        self.resolved_engine()

    def resolved_engine(self) -> str:
        """The engine that will run: "native" or "python"; refuses one that cannot."""
        return resolve_engine(self.engine)

    def prepare(self) -> None:
        """Validate, and compile the native engine if it will run (before any clock)."""
        self.validate()
        if self.resolved_engine() == "native":
            compile_native_loops()


@dataclass(frozen=True)
class Exchange:
    """What each round trip sends and the reply it expects (an echo by default); the
    reply may be longer or shorter than the message (a declared protocol's exchange)."""

    message: bytes
    reply: bytes

    @classmethod
    def echo(cls, size: int) -> Exchange:
        message = message_for(size)
        return cls(message, message)


@dataclass
class PingPongResult:
    histogram: LatencyHistogram          # closed: round trips; open: from intended send time
    service: LatencyHistogram            # from the actual send (same as histogram if closed)
    requested: int
    completed: int
    elapsed_s: float
    failures: dict[str, int] = field(default_factory=dict)
    first_failure: str | None = None
    mismatched_echoes: int = 0
    stopped_at_budget: bool = False
    engine: str = "python"

    @property
    def ok(self) -> bool:
        """Every round trip started came back intact (a time budget may cut the count)."""
        return not self.failures and (self.completed == self.requested or self.stopped_at_budget)

    def describe(self) -> str:
        text = f"{self.completed} of {self.requested} round trips in {self.elapsed_s:.3f} s " \
               f"({self.engine} engine)"
        if self.stopped_at_budget:
            text += " (stopped at the time budget)"
        if self.failures:
            text += f"; failures {self.failures}; first: {self.first_failure}"
        return text


class OpenLoopSchedule:
    """When request i is due, and its latency measured from then (pure)."""

    def __init__(self, start_ns: int, rate_per_s: float) -> None:
        check_positive("request rate (per second)", rate_per_s)
        self.start_ns = start_ns
        self.interval_ns = 1e9 / rate_per_s

    def intended_ns(self, index: int) -> int:
        return self.start_ns + round(index * self.interval_ns)

    def latency_ns(self, index: int, completed_ns: int) -> int:
        return completed_ns - self.intended_ns(index)


def message_for(size: int) -> bytes:
    """Bytes 1..251 repeating: 251 is prime (no alignment with buffer sizes), and there is
    no NUL, whose mishandling is binary-integrity's to judge, not a measurement's."""
    return bytes(1 + i % 251 for i in range(size))


def run_ping_pong(address: str | Address, request: PingPongRequest,
                  exchange: Exchange | None = None) -> PingPongResult:
    """Connect, warm up, then measure ``request.count`` round trips; never raises for
    the peer's failures (they are counted by errno name in the result)."""
    request.prepare()  # validated, and compiled before the clock and the connection start
    exchange = exchange or Exchange.echo(request.size)
    if len(exchange.message) != request.size or not exchange.reply:
        raise UsageError(f"the message must be {request.size} bytes and the reply not empty")
    target = resolve_destination(address)
    with pinned(request.cpus):
        return _run(target, request, exchange)


def _run(target: Address, request: PingPongRequest, exchange: Exchange) -> PingPongResult:
    engine = request.resolved_engine()
    closed_loop, open_loop = _closed_loop, _open_loop
    if engine == "native":
        closed_loop, open_loop = _native_closed_loop, _native_open_loop
    total = request.warmup + request.count
    rtt = array.array("q", bytes(8 * total))
    late = array.array("q", bytes(8 * total)) if request.rate_per_s else None
    failures: dict[str, int] = {}
    first_failure = None
    done = mismatched = 0
    started = time.perf_counter()
    stop_ns = (time.perf_counter_ns() + int(request.budget_s * 1e9)
               if request.budget_s else _NEVER)
    sock = open_stream(target)
    try:
        set_io_timeouts(sock, request.timeout_s)
        sock.connect(target.sockaddr)
        if late is None:
            done, mismatched = closed_loop(sock, exchange, total, rtt, stop_ns)
        else:
            done, mismatched = open_loop(sock, exchange, total, rtt, late,
                                         request.rate_per_s, request.warmup, stop_ns)
    except OSError as exc:
        failures[failure_name(exc)] = 1
        first_failure = f"after {max(0, _done_of(rtt) - request.warmup)} round trips: " \
                        f"{failure_name(exc)} ({exc.strerror or exc})"
        done = _done_of(rtt)
    except _EchoEnded as exc:
        failures["EOF"] = 1
        first_failure = str(exc)
        done = exc.done
    finally:
        sock.close()
    elapsed = time.perf_counter() - started
    if mismatched:
        failures["mismatch"] = mismatched
        first_failure = first_failure or f"{mismatched} echoes differed from the message sent"
    service = LatencyHistogram()
    service.record_many(rtt[request.warmup:done])
    histogram = service
    if late is not None:
        histogram = LatencyHistogram()
        histogram.record_many(late[request.warmup:done])
    return PingPongResult(histogram, service, request.count, max(0, done - request.warmup),
                          elapsed, failures, first_failure, mismatched,
                          stopped_at_budget=done < total and not failures, engine=engine)


class _EchoEnded(Exception):
    def __init__(self, done: int, got: int, size: int) -> None:
        super().__init__(f"peer closed the connection during round trip {done} after "
                         f"{got} of {size} echoed bytes")
        self.done = done


def _done_of(samples: array.array) -> int:
    """Round trips completed: samples are strictly positive once written."""
    for index, value in enumerate(samples):
        if value == 0:
            return index
    return len(samples)


def _native_closed_loop(sock, exchange: Exchange, total: int, rtt: array.array, stop_ns: int
                        ) -> tuple[int, int]:
    """_closed_loop's contract, compiled (native_loop)."""
    if not total:
        return 0, 0
    with memoryview(rtt) as samples:
        run = run_closed_loop(sock.fileno(), exchange.message, exchange.reply,
                              samples[:total], stop_ns)
    return _native_outcome(run, 0, len(exchange.reply))


def _native_open_loop(sock, exchange: Exchange, total: int, rtt: array.array,
                      late: array.array, rate_per_s: float, warmup: int, stop_ns: int
                      ) -> tuple[int, int]:
    """_open_loop's contract, compiled (native_loop)."""
    reached, mismatched = _native_closed_loop(sock, exchange, warmup, rtt, stop_ns)
    if reached < warmup:
        return reached, mismatched
    first_due = time.perf_counter_ns() + SPIN_BELOW_NS
    with memoryview(rtt) as samples, memoryview(late) as delays:
        run = run_open_loop(sock.fileno(), exchange.message, exchange.reply,
                            samples[warmup:total], delays[warmup:total], first_due,
                            1e9 / rate_per_s, stop_ns)
    done, more_mismatched = _native_outcome(run, warmup, len(exchange.reply))
    return done, mismatched + more_mismatched


def _native_outcome(run: NativeRun, first: int, size: int) -> tuple[int, int]:
    """(index reached, mismatched), or the failure raised as the python engine raises it."""
    if run.errno:
        raise OSError(run.errno, os.strerror(run.errno))
    if run.eof_after_bytes is not None:
        raise _EchoEnded(first + run.reached, run.eof_after_bytes, size)
    return first + run.reached, run.mismatched


def _closed_loop(sock, exchange: Exchange, total: int, rtt: array.array, stop_ns: int
                 ) -> tuple[int, int]:
    """Round trips 0..total-1; returns (index reached, mismatched echoes)."""
    # os.write/os.read on the fd are the thinnest calls CPython has (no keyword
    # parsing, no buffer protocol on the read side): ~0.1 µs less per round trip
    # than sock.sendall/recv_into, i.e. 2 % of a pinned loopback round trip.
    message, reply = exchange.message, exchange.reply
    fd, size, reply_size = sock.fileno(), len(message), len(reply)
    write, read, clock = os.write, os.read, time.perf_counter_ns
    mismatched = 0
    for index in range(total):
        started = clock()
        if (sent := write(fd, message)) != size:
            _write_rest(fd, message, sent)
        echo = read(fd, reply_size)
        if echo != reply:  # short read, or a wrong echo
            echo = _read_rest(fd, echo, reply_size, index)
        finished = clock()
        rtt[index] = finished - started or 1
        if echo != reply:
            mismatched += 1
        if finished > stop_ns:  # checked outside the timed span
            return index + 1, mismatched
    return total, mismatched


def _open_loop(sock, exchange: Exchange, total: int, rtt: array.array, late: array.array,
               rate_per_s: float, warmup: int, stop_ns: int) -> tuple[int, int]:
    message, reply = exchange.message, exchange.reply
    fd, size = sock.fileno(), len(message)
    clock = time.perf_counter_ns
    # The schedule starts after the warm-up, which runs closed-loop.
    reached, mismatched = _closed_loop(sock, exchange, warmup, rtt, stop_ns)
    if reached < warmup:
        return reached, mismatched
    schedule = OpenLoopSchedule(clock() + SPIN_BELOW_NS, rate_per_s)
    for index in range(warmup, total):
        due = schedule.intended_ns(index - warmup)
        if due > stop_ns:
            return index, mismatched
        _wait_until(due, clock)
        sent_at = clock()
        if (sent := os.write(fd, message)) != size:
            _write_rest(fd, message, sent)
        echo = _read_rest(fd, b"", len(reply), index)
        finished = clock()
        rtt[index] = finished - sent_at or 1
        late[index] = max(1, finished - due)
        if echo != reply:
            mismatched += 1
    return total, mismatched


def _write_rest(fd: int, message: bytes, sent: int) -> None:
    """Finish a short write (a blocking socket returns early only on a signal)."""
    with memoryview(message) as view:
        while sent < len(message):
            sent += os.write(fd, view[sent:])


def _read_rest(fd: int, echo: bytes, size: int, index: int) -> bytes:
    """Read until ``size`` bytes of echo are in; EOF first is the peer ending the echo."""
    while len(echo) < size:
        more = os.read(fd, size - len(echo))
        if not more:
            raise _EchoEnded(index, len(echo), size)
        echo += more
    return echo


def _wait_until(due_ns: int, clock) -> None:
    while (remaining := due_ns - clock()) > 0:
        if remaining > SPIN_BELOW_NS:
            time.sleep((remaining - SPIN_BELOW_NS) / 1e9)
