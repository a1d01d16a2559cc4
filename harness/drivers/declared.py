"""Declared protocols: the client side of the generic families.

A ``[[protocol]]`` declaration (sockspec.protocol.declared) says how to frame a
request and judge its reply; these drivers say how a family sends it: whole,
in pieces, with the FIN, or leaves in the middle. The unit is "exchange number
``index`` of the declaration": the exchanges before it run first, sent whole, so
their captures and the connection's counter ``{n}`` are what the declaration
expects (on the same connection when the server keeps connections,
``properties.keep_connection``; else each on its own), then the family's own way
of sending applies to that one exchange.

Every wait is bounded by a timeout from the caller. Every client here sends the
same values (one seeded generator per connection), so clients running at once
agree on any state the server keeps (a key the declaration sets then reads).
"""

from __future__ import annotations

import array
import random
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from sockspec.drivers.closing import connect_with_receive_buffer
from sockspec.drivers.owed import wait_until_fin_acked
from sockspec.drivers.peer import ReadAlone, peer_socket, read_everything, wait_for
from sockspec.errors import PeerError, SockspecError
from sockspec.measure.histogram import LatencyHistogram
from sockspec.protocol.conversation import Conversation, Outcome, sequence_values
from sockspec.protocol.declared import WHITESPACE, Exchange, Protocol, Sequence, Template
from sockspec.transport import (
    Address,
    TcpAddress,
    abort,
    connect,
    describe_os_error,
    send_all,
)

# The seed of every connection's generator: the same {payload} on every connection.
SEED = 0


def keeps_connection(protocol: Protocol) -> bool:
    return protocol.properties.keeps_connection is True


def new_conversation(protocol: Protocol, sock: socket.socket, timeout: float) -> Conversation:
    """A Conversation on ``sock`` with the generator every client here uses (SEED)."""
    return Conversation(protocol, sock, timeout=timeout, rng=random.Random(SEED))


@dataclass
class Ready:
    """A connection on which exchange ``exchange`` is next; ``before``: how the
    exchanges before it went (all right, or the last one wrong)."""

    sock: socket.socket
    conversation: Conversation
    exchange: Exchange
    index: int
    before: list[Outcome]

    def render(self, extra: dict[str, bytes] | None = None) -> tuple[bytes, bytes]:
        return self.conversation.render(self.exchange, extra)

    def receive(self, sent: bytes, wire: bytes, extra: dict[str, bytes] | None = None) -> Outcome:
        return self.conversation.receive(self.exchange, sent, wire, extra)


class NotPrepared(SockspecError):
    """An exchange sent whole before the one under test went wrong (basic's business)."""

    def __init__(self, before: list[Outcome]) -> None:
        outcome = before[-1]
        super().__init__(f"exchange {outcome.exchange.name!r}, sent whole before the one under "
                         f"test, went wrong: {outcome.problem}")
        self.before = before


@contextmanager
def ready_for(protocol: Protocol, address: Address, index: int, timeout: float, *,
              exchanges: tuple[Exchange, ...] | None = None,
              extra: dict[str, bytes] | None = None, nodelay: bool = False,
              receive_buffer: int | None = None) -> Iterator[Ready]:
    """A connection on which exchange ``index`` of ``exchanges`` (default: the
    declaration's) is next; the ones before it done, sent whole, their captures kept.
    Raises NotPrepared when one of them went wrong; ConnectError when no connection."""
    exchanges = protocol.exchanges if exchanges is None else exchanges
    values: dict[str, bytes] = {}
    before: list[Outcome] = []
    if not keeps_connection(protocol):
        for exchange in exchanges[:index]:
            with connect(address, timeout) as sock:
                conversation = Conversation(protocol, sock, timeout=timeout,
                                            rng=random.Random(SEED), values=values)
                before.append(conversation.run(exchange, extra))
                values = conversation.values
            if not before[-1].ok:
                raise NotPrepared(before)
    if receive_buffer is not None:
        sock = connect_with_receive_buffer(address, timeout, receive_buffer)
    else:
        sock = connect(address, timeout, nodelay=nodelay)
    with sock:
        if nodelay and isinstance(address, TcpAddress):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conversation = Conversation(protocol, sock, timeout=timeout, rng=random.Random(SEED),
                                    values=values)
        if keeps_connection(protocol):
            for exchange in exchanges[:index]:
                before.append(conversation.run(exchange, extra))
                if not before[-1].ok:
                    raise NotPrepared(before)
        yield Ready(sock, conversation, exchanges[index], index, before)


def run_exchanges(protocol: Protocol, address: Address, timeout: float, *,
                  exchanges: tuple[Exchange, ...] | None = None,
                  extra: dict[str, bytes] | None = None) -> list[Outcome]:
    """Each exchange in order, sent whole (one connection when the server keeps it),
    stopping at the first wrong one (the last outcome)."""
    exchanges = protocol.exchanges if exchanges is None else exchanges
    try:
        with ready_for(protocol, address, len(exchanges) - 1, timeout, exchanges=exchanges,
                       extra=extra) as ready:
            sent, wire = ready.render(extra)
            try:
                send_all(ready.sock, wire)
            except PeerError as exc:
                return [*ready.before, Outcome(ready.exchange, sent, wire, problem=str(exc))]
            return [*ready.before, ready.receive(sent, wire, extra)]
    except NotPrepared as exc:
        return exc.before


# -- one exchange, sent the family's way ----------------------------------------------


@dataclass(frozen=True)
class Tried:
    """One exchange sent one way on its own connection: what came of it."""

    index: int
    name: str
    variant: object           # the family's parameter (an offset, a piece count...)
    outcome: Outcome | None   # None: it never got that far
    problem: str | None       # None: the reply was right

    def describe(self) -> str:
        if self.outcome is None:
            return f"{self.name} ({self.variant}): {self.problem}"
        facts = self.outcome.facts()
        return (f"{self.name} ({self.variant}): {self.problem}; request {facts['request']}, "
                f"reply {facts['reply']}")


Sender = Callable[[socket.socket, bytes], None]


def try_exchange(protocol: Protocol, address: Address, index: int, variant: object,
                 send: Sender, timeout: float, *, nodelay: bool = True) -> Tried:
    """Exchange ``index`` on a fresh connection, its request sent by ``send(sock, wire)``,
    its reply judged; the exchanges before it sent whole."""
    name = protocol.exchanges[index].name
    try:
        with ready_for(protocol, address, index, timeout, nodelay=nodelay) as ready:
            sent, wire = ready.render()
            started = time.monotonic()
            try:
                send(ready.sock, wire)
            except (SockspecError, OSError) as exc:
                return Tried(index, name, variant, Outcome(ready.exchange, sent, wire),
                             f"sending the request failed: {exc}")
            outcome = ready.conversation.receive(ready.exchange, sent, wire, started=started)
            return Tried(index, name, variant, outcome, outcome.problem)
    except NotPrepared as exc:
        return Tried(index, name, variant, None, str(exc))
    except (SockspecError, OSError) as exc:
        return Tried(index, name, variant, None, str(exc))


def try_all(protocol: Protocol, address: Address, cases: list[tuple[int, object]],
            send_for: Callable[[int, object], Sender], timeout: float, at_once: int,
            *, nodelay: bool = True) -> list[Tried]:
    """``try_exchange`` for each (exchange index, variant), ``at_once`` connections at
    a time; the results in the order of ``cases``."""
    def one(case: tuple[int, object]) -> Tried:
        index, variant = case
        return try_exchange(protocol, address, index, variant, send_for(index, variant),
                            timeout, nodelay=nodelay)

    with ThreadPoolExecutor(max(1, min(at_once, len(cases))),
                            thread_name_prefix="declared") as pool:
        return list(pool.map(one, cases))


def wire_of(protocol: Protocol, index: int) -> bytes:
    """The wire bytes exchange ``index`` sends when it is next on a connection that ran
    the ones before it (its length decides the pieces and offsets a family tries).
    A request that uses a captured value renders with the declared name in its place."""
    conversation = Conversation(protocol, None, timeout=1.0, rng=random.Random(SEED))
    names = {v: v.encode() for e in protocol.exchanges for v in e.send.variables}
    conversation.values.update({k: v for k, v in names.items()
                                if k not in ("n", "payload", "size")})
    for exchange in protocol.exchanges[:index] if keeps_connection(protocol) else ():
        conversation.render(exchange)
    return conversation.render(protocol.exchanges[index])[1]


def send_split(offsets: tuple[int, ...], pause_s: float,
               read_wait_s: float | None = None) -> Sender:
    """A sender that cuts the request at ``offsets`` (clipped to its length) and
    pauses ``pause_s`` before each further piece; with ``read_wait_s``, each further
    piece also waits until the server has read the ones before (at most that long,
    once: sockspec.drivers.peer.ReadAlone)."""
    def send(sock: socket.socket, wire: bytes) -> None:
        alone = ReadAlone(lambda: read_everything(sock), read_wait_s) if read_wait_s else None
        cuts = [0, *sorted({o for o in offsets if 0 < o < len(wire)}), len(wire)]
        for number, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
            if number:
                time.sleep(pause_s)
                if alone is not None:
                    alone.before_next(number)
            send_all(sock, wire[start:end])
    return send


# -- the sequences (binary, large_reply) -------------------------------------------------


def sequence_exchanges(protocol: Protocol, which: Sequence) -> tuple[Exchange, ...]:
    return protocol.sequence(which)


def large_values(protocol: Protocol, seed: int) -> dict[str, bytes]:
    """``{payload}`` and ``{size}`` of the declared large reply: letters and digits
    whatever its alphabet, so a family about volume and pacing cannot trip over a
    server's handling of odd byte values (binary-integrity's business)."""
    text = replace(protocol.large_reply, alphabet="text")
    return sequence_values(protocol, text, random.Random(seed))


# -- leaving while a reply is owed -------------------------------------------------------

# Our receive buffer holds next to nothing, so the server's reply stalls once its
# own send buffer is full (drivers/owed.py has the kernel facts).
SMALL_RECEIVE_BUFFER = 4096
# The server wrote nothing more for this long, with our request read: its send()
# waits for room that cannot come (we read nothing).
STALLED_FOR_S = 0.05


def reply_wire_size(protocol: Protocol, exchange: Exchange, values: dict[str, bytes],
                    sent: bytes) -> int | None:
    """The wire bytes of the reply ``exchange`` expects, when the declaration fixes them
    (exact bytes or the payload sent back); None for a regex or any frame."""
    expect = exchange.expect
    if expect.kind == "echo":
        return len(protocol.framing.encode(sent))
    if expect.kind != "exact":
        return None
    frames = [f.render(values) if hasattr(f, "render") else f for f in expect.frames]
    return sum(len(protocol.framing.encode(f)) for f in frames)


def leave_while_reply_owed(protocol: Protocol, address: Address, timeout: float,
                           seed: int) -> str:
    """Leave so that the server's next send() of a reply fails with EPIPE (SIGPIPE if it
    is not ignored); returns what was owed, in words.

    TCP: with a tiny receive buffer, run the large-reply sequence; once the server has
    read our last request and its reply stalls (sock_diag: nothing more written for
    50 ms, less than the declared reply), send our FIN, wait until it is
    acknowledged (the server is in CLOSE_WAIT), then reset: an RST in CLOSE_WAIT sets
    EPIPE (net/ipv4/tcp_input.c, tcp_reset), and the blocked send() fails with it.
    The FIN goes out only after the server has read the request and is answering.
    Unix: shutdown(SHUT_RD) first (the server's end gets SEND_SHUTDOWN,
    net/unix/af_unix.c), then the first exchange's request, then close(): its
    reply's send() fails with EPIPE.
    Raises SockspecError when the state could not be set up.
    """
    if not isinstance(address, TcpAddress):
        sock = connect(address, timeout)
        try:
            sock.shutdown(socket.SHUT_RD)
            conversation = Conversation(protocol, sock, timeout=timeout,
                                        rng=random.Random(seed))
            _, wire = conversation.render(protocol.exchanges[0])
            sent = send_all(sock, wire)
        finally:
            sock.close()
        return f"{sent} request bytes sent after SHUT_RD, the whole reply owed"
    exchanges = protocol.sequence(protocol.large_reply)
    extra = large_values(protocol, seed)
    deadline = time.monotonic() + timeout
    with ready_for(protocol, address, len(exchanges) - 1, timeout, exchanges=exchanges,
                   extra=extra, receive_buffer=SMALL_RECEIVE_BUFFER) as ready:
        try:
            payload, wire = ready.render(extra)
            send_all(ready.sock, wire)
            size = reply_wire_size(protocol, ready.exchange, ready.conversation.current,
                                   payload)
            if not wait_for(lambda: _stalled(ready.sock, size), deadline - time.monotonic()):
                raise SockspecError(f"the server's reply to {ready.exchange.name!r} did not "
                                    f"stall with bytes still owed ({_written(ready.sock)} of "
                                    f"{size if size is not None else 'an unknown number of'} "
                                    "written)")
            ready.sock.shutdown(socket.SHUT_WR)
            wait_until_fin_acked(ready.sock, deadline)
            written = _written(ready.sock)
            return (f"reply to {ready.exchange.name!r}: {written} of "
                    f"{size if size is not None else '?'} bytes written when we left")
        finally:
            abort(ready.sock)


def _written(sock: socket.socket) -> int:
    return peer_socket(sock).written or 0


def _stalled(sock: socket.socket, size: int | None) -> bool:
    """Our request read, the reply not all written, and no progress for STALLED_FOR_S."""
    peer = peer_socket(sock)
    if peer.unread or peer.written is None or (size is not None and peer.written >= size):
        return False
    time.sleep(STALLED_FOR_S)
    again = peer_socket(sock)
    return again.unread == 0 and again.written == peer.written


# -- measurement (latency, rates, load, throughput): helper G2 -----------------------------
#
# The measurement families time one exchange over and over: the declaration's first
# (the one the liveness probe sends on a fresh connection, so it needs no earlier
# state). When its request and reply are the same bytes every time ("fixed": no {n},
# no captured value, no random bytes, an exact or echo expectation), the compiled
# engines of sockspec.measure time it exactly as they time the echo; otherwise a
# Conversation renders and judges each one (a few microseconds more per exchange,
# said in the facts as the engine "conversation").

# Variables that keep one value for the whole connection (so a request using them is
# still the same bytes every time).
STEADY_VARIABLES = frozenset({"payload", "size"})


@dataclass(frozen=True)
class FixedExchange:
    """An exchange whose request and reply are the same wire bytes every time."""

    name: str
    message: bytes     # the request, framed
    reply: bytes       # the whole reply, framed


def fixed_exchange(protocol: Protocol, exchange: Exchange | None = None) -> FixedExchange | None:
    """``exchange`` (default: the first) as fixed wire bytes, or None when its request or
    reply changes from one exchange to the next (or the reply ends at the server's close)."""
    exchange = exchange or protocol.exchanges[0]
    expect = exchange.expect
    if protocol.framing.kind == "close" or exchange.send.random_size \
            or set(exchange.send.variables) - STEADY_VARIABLES \
            or expect.kind not in ("exact", "echo") \
            or set(expect.variables) - STEADY_VARIABLES:
        return None
    conversation = Conversation(protocol, None, timeout=1.0, rng=random.Random(0))
    payload, wire = conversation.render(exchange)
    if expect.kind == "echo":
        frames = [payload]
    else:
        frames = [f.render(conversation.current) if isinstance(f, Template) else f
                  for f in expect.frames]
    return FixedExchange(exchange.name, wire, b"".join(protocol.framing.encode(f)
                                                       for f in frames))


def describe_exchange(protocol: Protocol, exchange: Exchange | None = None) -> str:
    """One line for the facts: which exchange, and how it is timed."""
    exchange = exchange or protocol.exchanges[0]
    fixed = fixed_exchange(protocol, exchange)
    how = (f"fixed: {len(fixed.message)}-byte request, {len(fixed.reply)}-byte reply"
           if fixed else "rendered and judged per exchange (conversation engine)")
    return f"{exchange.name!r} of [[protocol]] {protocol.name!r} ({how})"


def _failure_name(problem: str) -> str:
    """A reply problem counted like the engines count failures."""
    if "within" in problem:
        return "timeout"
    if "with RST" in problem:
        return "ECONNRESET"
    if "with FIN" in problem:
        return "EOF"
    return "mismatch"


def declared_ping_pong(address: Address, protocol: Protocol, *, count: int, warmup: int,
                       timeout_s: float, budget_s: float | None = None):
    """``warmup`` + ``count`` round trips of the first exchange on one connection
    (TCP_NODELAY on TCP), as sockspec.measure.latency.run_ping_pong measures them;
    returns its PingPongResult (engine "conversation" when the exchange is not fixed)."""
    from sockspec.measure.latency import Exchange as Wire
    from sockspec.measure.latency import PingPongRequest, PingPongResult, run_ping_pong
    from sockspec.measure.plan import MAX_MESSAGE_BYTES

    fixed = fixed_exchange(protocol)
    if fixed is not None and len(fixed.message) <= MAX_MESSAGE_BYTES:
        request = PingPongRequest(size=len(fixed.message), count=count, warmup=warmup,
                                  timeout_s=timeout_s, budget_s=budget_s)
        return run_ping_pong(address, request, Wire(fixed.message, fixed.reply))
    total = warmup + count
    rtt = array.array("q", bytes(8 * total))
    failures: dict[str, int] = {}
    first_failure = None
    done = 0
    started = time.perf_counter()
    stop = started + budget_s if budget_s else float("inf")
    try:
        sock = connect(address, timeout_s, nodelay=True)
    except SockspecError as exc:
        failures["connect"] = 1
        first_failure = str(exc)
    else:
        with sock:
            conversation = Conversation(protocol, sock, timeout=timeout_s)
            exchange = protocol.exchanges[0]
            clock = time.perf_counter_ns
            for index in range(total):
                began = clock()
                outcome = conversation.run(exchange)
                rtt[index] = clock() - began or 1
                if not outcome.ok:
                    failures[_failure_name(outcome.problem)] = 1
                    first_failure = (f"after {max(0, index - warmup)} round trips: "
                                     f"{outcome.problem}")
                    break
                done = index + 1
                if time.perf_counter() > stop:
                    break
    histogram = LatencyHistogram()
    histogram.record_many(rtt[warmup:done])
    return PingPongResult(histogram, histogram, count, max(0, done - warmup),
                          time.perf_counter() - started, failures, first_failure,
                          stopped_at_budget=done < total and not failures,
                          engine="conversation")


def declared_connection_rate(address: Address, protocol: Protocol, request):
    """connect, the first exchange, close(), for ``request.duration_s``: a ConnRateResult
    (sockspec.measure.connrate) of ``request`` (a ConnRateRequest)."""
    from sockspec.measure.connrate import ConnRateResult, run_connection_rate
    from sockspec.measure.latency import Exchange as Wire

    fixed = fixed_exchange(protocol)
    if fixed is not None:
        return run_connection_rate(address, request, Wire(fixed.message, fixed.reply))
    exchange = protocol.exchanges[0]
    samples: list[int] = []
    failures: dict[str, int] = {}
    first_failure = None
    attempted = 0
    clock = time.perf_counter_ns
    started = now = clock()
    end = started + int(request.duration_s * 1e9)
    while now < end and attempted < request.max_connections \
            and sum(failures.values()) < request.max_failures:
        attempted += 1
        began = now
        try:
            with connect(address, request.timeout_s) as sock:
                outcome = Conversation(protocol, sock, timeout=request.timeout_s,
                                       rng=random.Random(attempted)).run(exchange)
            problem = outcome.problem
        except SockspecError as exc:
            problem = f"connect: {exc}"
        now = clock()
        if problem is None:
            samples.append(now - began or 1)
            continue
        name = "connect" if problem.startswith("connect: ") else _failure_name(problem)
        failures[name] = failures.get(name, 0) + 1
        first_failure = first_failure or f"connection {attempted}: {name} ({problem})"
    histogram = LatencyHistogram()
    histogram.record_many(samples)
    return ConnRateResult(histogram, attempted, len(samples), (now - started) / 1e9, failures,
                          first_failure,
                          stopped_early=sum(failures.values()) >= request.max_failures,
                          engine="conversation")


def exchange_then_close(address: Address, protocol: Protocol, timeout: float,
                        seed: int = 0) -> None:
    """Connect, run the first exchange, close (our FIN comes after the reply);
    PeerError saying what went wrong."""
    with connect(address, timeout) as sock:
        outcome = Conversation(protocol, sock, timeout=timeout,
                               rng=random.Random(seed)).run(protocol.exchanges[0])
    if not outcome.ok:
        raise PeerError(f"exchange {outcome.exchange.name!r}: {outcome.problem}")


def hold_declared(address: Address, protocol: Protocol, n: int, *, timeout_s: float):
    """``n`` connections opened, then the first exchange run on each in turn while all
    stay open (a Conversation each, its own seed, so a ``{payload}`` differs per
    connection), all released with RST at the end: a HoldResult
    (sockspec.measure.holder). For a first exchange that is not fixed; a fixed one
    goes through sockspec.measure.concurrent.hold_concurrent."""
    from sockspec.measure.holder import HoldResult
    from sockspec.measure.sockets import failure_name

    result = HoldResult(requested=n)
    socks: list[socket.socket] = []
    started = time.perf_counter()
    deadline = started + timeout_s

    def fail(index: int, name: str, detail: str) -> None:
        result.failures[name] = result.failures.get(name, 0) + 1
        result.first_failure = result.first_failure or f"connection {index}: {name} ({detail})"

    try:
        for index in range(n):
            left = deadline - time.perf_counter()
            if left <= 0:
                fail(index, "timeout", f"connect() not done within {timeout_s:g} s")
                continue
            try:
                socks.append(connect(address, left))
                result.established += 1
            except SockspecError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
                fail(index, failure_name(cause) if cause else "connect", str(exc))
        result.connect_s = time.perf_counter() - started
        exchange = protocol.exchanges[0]
        for index, sock in enumerate(socks):
            left = deadline - time.perf_counter()
            if left <= 0:
                fail(index, "timeout", f"the exchange did not start within {timeout_s:g} s")
                continue
            outcome = Conversation(protocol, sock, timeout=left,
                                   rng=random.Random(index)).run(exchange)
            if outcome.ok:
                result.verified += 1
            else:
                fail(index, _failure_name(outcome.problem), outcome.problem)
        result.setup_s = time.perf_counter() - started
    finally:
        for sock in socks:
            abort(sock)
    return result


@dataclass(frozen=True)
class DeclaredFill:
    """A client that sent large-reply requests without reading (slow-client-isolation)."""

    requests: int          # large-reply requests sent whole
    sent: int              # bytes sent in all, setup exchanges included
    blocked: bool          # the server took nothing more for the stall time
    elapsed_s: float
    error: str | None      # a setup exchange failed, or a send did
    exchange: str          # the request repeated

    def describe(self) -> str:
        state = ("the server stopped taking bytes" if self.blocked
                 else f"still sending after {self.elapsed_s:.1f} s")
        text = (f"sent {self.requests} {self.exchange!r} requests ({self.sent} bytes) and "
                f"read none of their replies; {state}")
        return text + (f"; {self.error}" if self.error else "")


def fill_with_requests(sock: socket.socket, protocol: Protocol, *, size: int, timeout: float,
                       max_bytes: int, stall_s: float, time_limit: float,
                       rng: random.Random) -> DeclaredFill:
    """Run the large-reply sequence's earlier exchanges normally, then send its last
    request over and over without reading a reply, until the server stops taking bytes
    (its send() to us blocks), ``max_bytes`` are sent, or ``time_limit`` passes."""
    sequence = protocol.large_reply
    exchanges = protocol.sequence(sequence)
    values = sequence_values(protocol, sequence, rng, size)
    conversation = Conversation(protocol, sock, timeout=timeout, rng=rng, values=values)
    started = time.perf_counter()
    last = exchanges[-1]
    for outcome in conversation.run_all(exchanges[:-1]):
        if not outcome.ok:
            return DeclaredFill(0, len(outcome.wire), False, time.perf_counter() - started,
                                f"exchange {outcome.exchange.name!r}: {outcome.problem}",
                                last.name)
    _, wire = conversation.render(last)
    batch = wire * max(1, 65536 // len(wire))
    view = memoryview(batch)
    sent = offset = 0
    blocked, error = False, None
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    sock.setblocking(False)
    try:
        while sent < max_bytes and time.perf_counter() - started < time_limit:
            try:
                count = sock.send(view[offset:])
            except BlockingIOError:
                if not poller.poll(stall_s * 1000):
                    blocked = True
                    break
                continue
            except OSError as exc:
                error = f"send failed: {describe_os_error(exc)}"
                break
            sent += count
            offset = (offset + count) % len(batch)
    finally:
        sock.settimeout(timeout)
    return DeclaredFill(sent // len(wire), sent, blocked, time.perf_counter() - started, error,
                        last.name)


@dataclass
class DeclaredThroughput:
    """Large replies through one connection (the throughput family)."""

    planned_bytes: int
    rounds: int = 0
    request_bytes: int = 0          # payload bytes sent
    reply_bytes: int = 0            # payload bytes of the replies, each judged
    elapsed_s: float = 0.0
    problem: str | None = None
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.problem is None and self.reply_bytes >= self.planned_bytes

    @property
    def gbit_per_s(self) -> float:
        """Gbit/s of reply payload (as the echo's counts the bytes echoed)."""
        return self.reply_bytes * 8 / self.elapsed_s / 1e9 if self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        text = (f"{self.rounds} round(s): {self.request_bytes} bytes sent, {self.reply_bytes} "
                f"of {self.planned_bytes} reply bytes received in {self.elapsed_s:.2f} s")
        return text + (f"; {self.problem}" if self.problem else "")


def declared_throughput(address: Address, protocol: Protocol, total_bytes: int, *,
                        timeout_s: float, deadline_s: float,
                        rng: random.Random) -> DeclaredThroughput:
    """The large-reply sequence over and over on one connection, one payload of its
    declared size each round, until its replies carry ``total_bytes``; every reply is
    judged against the declaration (exact bytes, byte for byte)."""
    sequence = protocol.large_reply
    exchanges = protocol.sequence(sequence)
    values = sequence_values(protocol, sequence, rng)
    result = DeclaredThroughput(planned_bytes=total_bytes)
    started = time.perf_counter()
    try:
        sock = connect(address, timeout_s)
    except SockspecError as exc:
        result.problem = str(exc)
        return result
    with sock:
        conversation = Conversation(protocol, sock, timeout=timeout_s, rng=rng, values=values)
        while result.reply_bytes < total_bytes and not result.problem:
            if time.perf_counter() - started > deadline_s:
                result.problem = f"not done within {deadline_s:g} s"
                break
            for exchange in exchanges:
                outcome = conversation.run(exchange)
                result.request_bytes += len(outcome.sent)
                if not outcome.ok:
                    result.problem = (f"round {result.rounds + 1}, exchange "
                                      f"{exchange.name!r}: {outcome.problem}")
                    result.facts = outcome.facts()
                    break
                result.reply_bytes += sum(len(f) for f in outcome.frames)
            else:
                result.rounds += 1
    result.elapsed_s = time.perf_counter() - started
    return result


# -- a reader that takes its bytes in bursts --------------------------------------------


class PacedSocket:
    """A socket seen through a reader that pauses ``pause_s`` before each ``burst_bytes``:
    give it to a FrameReader (``conversation.reader.sock = PacedSocket(sock, ...)``) and
    the reply is read slowly, so the server's send() blocks or comes up short."""

    def __init__(self, sock: socket.socket, burst_bytes: int, pause_s: float) -> None:
        self.sock = sock
        self.burst_bytes = burst_bytes
        self.pause_s = pause_s
        self.left = 0           # bytes still to read in this burst
        self.bursts = 0
        self.timeout: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, size: int) -> bytes:
        if self.left == 0:
            time.sleep(self.pause_s)
            self.left = self.burst_bytes
            self.bursts += 1
        self.sock.settimeout(self.timeout)
        chunk = self.sock.recv(min(size, self.left))
        self.left -= len(chunk)
        return chunk


# -- clients that leave in the common ways -------------------------------------------------


def exchange_then_leave(protocol: Protocol, address: Address, timeout: float,
                        leave: Callable[[socket.socket], None]) -> None:
    """Connect, the first exchange (its reply read whole), then ``leave`` (close or abort)."""
    sock = connect(address, timeout)
    try:
        outcome = Conversation(protocol, sock, timeout=timeout,
                               rng=random.Random(SEED)).run(protocol.exchanges[0])
    finally:
        leave(sock)
    if not outcome.ok:
        raise PeerError(f"exchange {outcome.exchange.name!r}: {outcome.problem}")


def half_request_then_reset(protocol: Protocol, address: Address, timeout: float) -> None:
    """Connect, send the first request but its last byte, then RST (SO_LINGER {1, 0}):
    the server's next recv() fails while it waits for the rest of a message."""
    wire = wire_of(protocol, 0)
    sock = connect(address, timeout)
    try:
        send_all(sock, wire[:-1])
    finally:
        abort(sock)


def close_at_once(address: Address, timeout: float) -> None:
    """Connect and close without a word: the server's first recv() returns 0."""
    connect(address, timeout).close()


def reset_at_once(address: Address, timeout: float) -> None:
    abort(connect(address, timeout))


# -- every byte value ------------------------------------------------------------------

_TEXT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def allowed_bytes(protocol: Protocol, sequence: Sequence) -> bytes:
    """The byte values a sequence's ``{payload}`` may hold, ascending."""
    if sequence.alphabet == "text":
        return bytes(sorted(_TEXT))
    forbidden = protocol.framing.forbidden() if sequence.alphabet != "all" else b""
    forbidden += WHITESPACE if sequence.alphabet == "no-whitespace" else b""
    return bytes(b for b in range(256) if b not in forbidden)


def binary_payload(protocol: Protocol, sequence: Sequence) -> dict[str, bytes]:
    """``{payload}`` (``sequence.size`` bytes) and ``{size}`` for binary-integrity: every
    allowed value ascending, then descending, then each next to the lowest and the
    highest (NUL and 0xff with "all"), repeated."""
    values = allowed_bytes(protocol, sequence)
    low, high = values[0], values[-1]
    pattern = values + values[::-1] + b"".join(bytes((v, low, v, high)) for v in values)
    payload = (pattern * (sequence.size // len(pattern) + 1))[:sequence.size]
    return {"payload": payload, "size": str(len(payload)).encode()}


# -- wire-level scenarios (crafted segments): helper G2 -----------------------------------


def wire_request(protocol: Protocol) -> tuple[Conversation, bytes, bytes]:
    """The first exchange's request as a fresh connection sends it: (the conversation
    that rendered it, whose ``current`` values judge the reply; the payload; the wire)."""
    conversation = Conversation(protocol, None, timeout=1.0, rng=random.Random(SEED))
    payload, wire = conversation.render(protocol.exchanges[0])
    return conversation, payload, wire


def reply_frames(protocol: Protocol, received: bytes, *, at_end: bool,
                 count: int) -> tuple[list[bytes], str | None]:
    """Up to ``count`` frames cut from ``received`` and, when the framing breaks, why."""
    frames: list[bytes] = []
    buffer = bytearray(received)
    while len(frames) < count:
        try:
            found = protocol.framing.decode(buffer, at_end=at_end)
        except ValueError as exc:
            return frames, f"the reply breaks the framing ({protocol.framing.describe()}): {exc}"
        if found is None:
            break
        frames.append(found[0])
        del buffer[:found[1]]
    return frames, None


def judge_wire_reply(protocol: Protocol, conversation: Conversation, sent: bytes,
                     received: bytes, *, at_end: bool) -> str | None:
    """None when ``received`` holds the first exchange's declared reply, else what differs."""
    exchange = protocol.exchanges[0]
    frames, broken = reply_frames(protocol, received, at_end=at_end,
                                  count=exchange.expect.count)
    if broken:
        return broken
    if len(frames) < exchange.expect.count:
        return (f"{len(frames)} of {exchange.expect.count} reply frames arrived "
                f"({len(received)} bytes)")
    return exchange.expect.check(frames, conversation.current, sent)


def reply_arrived(protocol: Protocol, received: bytes, at_end: bool) -> bool:
    """The first exchange's whole reply is in (or its framing already broke)."""
    count = protocol.exchanges[0].expect.count
    frames, broken = reply_frames(protocol, received, at_end=at_end, count=count)
    return broken is not None or len(frames) >= count
