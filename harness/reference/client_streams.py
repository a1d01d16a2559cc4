"""Small blocking stream pieces shared by the reference client's operations.

Address vetting, a recv that reports how the stream ended instead of raising,
a body collector that counts/hashes/samples without keeping the bytes, and a
background sender so reading and writing can overlap on one blocking socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from sockspec.errors import AddressError, SockspecError
from sockspec.iproute import in_private_network_namespace
from sockspec.reference.stream_digest import EvidenceWindow, StreamDigest
from sockspec.transport import Address, StreamEnd, describe_os_error, half_close, parse_address

RECV_BUFFER_BYTES = 1024 * 1024
# When the reader is done the sender normally is too (the peer's FIN or the last
# echoed byte follows our last send); it gets this long before being woken.
SENDER_SETTLE_S = 2.0
SENDER_JOIN_GRACE_S = 5.0

BodySink = Callable[[memoryview], object]


def resolve_target(address: str | Address) -> Address:
    """Parse ``address`` if it is text and refuse anything but loopback or Unix (any
    address is allowed inside a named network namespace: the wire lab's)."""
    target = parse_address(address) if isinstance(address, str) else address
    if not target.is_loopback() and not in_private_network_namespace():
        raise AddressError(
            f"{target} is not a loopback address; only 127.0.0.0/8, ::1 and Unix sockets"
            " are allowed"
        )
    return target


def first_difference(expected: bytes, observed: bytes) -> int | None:
    """Offset of the first differing byte (or the shorter length); None if equal."""
    if expected == observed:
        return None
    shorter = min(len(expected), len(observed))
    for offset in range(0, shorter, 4096):  # compare blocks first; bytes only in the bad one
        stop = min(offset + 4096, shorter)
        if expected[offset:stop] != observed[offset:stop]:
            return next(i for i in range(offset, stop) if expected[i] != observed[i])
    return shorter


class InactivityClock:
    """Per-wait timeout, optionally capped by an overall deadline."""

    def __init__(self, timeout: float, deadline_s: float | None, started: float) -> None:
        self.timeout = timeout
        self.deadline = None if deadline_s is None else started + deadline_s

    def next_wait(self) -> float:
        if self.deadline is None:
            return self.timeout
        return min(self.timeout, self.deadline - time.perf_counter())


def recv_some(sock: socket.socket, view: memoryview, clock: InactivityClock) -> int | StreamEnd:
    """One recv_into: a positive count, or how the stream ended (FIN, RST, TIMEOUT)."""
    wait = clock.next_wait()
    if wait <= 0:
        return StreamEnd.TIMEOUT
    sock.settimeout(wait)
    try:
        count = sock.recv_into(view)
    except TimeoutError:
        return StreamEnd.TIMEOUT
    except (ConnectionResetError, BrokenPipeError):
        return StreamEnd.RST
    return count if count else StreamEnd.FIN


class BodyCollector:
    """Counts, hashes and samples stream bytes; bytes past ``expected`` count as excess."""

    def __init__(
        self, expected: int | None, digest: StreamDigest, sink: BodySink | None = None
    ) -> None:
        self.expected = expected
        self.digest = digest
        self.sink = sink
        self.evidence = EvidenceWindow()
        self.length = 0
        self.excess = 0

    def add(self, data: memoryview) -> None:
        if self.expected is not None and self.length + len(data) > self.expected:
            keep = self.expected - self.length
            self.excess += len(data) - keep
            data = data[:keep]
        if data:
            self.length += len(data)
            self.digest.update(data)
            self.evidence.add(data)
            if self.sink is not None:
                self.sink(data)

    @property
    def wants_more(self) -> bool:
        return self.expected is None or self.length < self.expected


def collect_until_end(
    sock: socket.socket, collector: BodyCollector, clock: InactivityClock
) -> StreamEnd:
    """recv_into one reused 1 MiB buffer until the stream ends or the collector is full."""
    view = memoryview(bytearray(RECV_BUFFER_BYTES))
    while collector.wants_more:
        room = len(view) if collector.expected is None else collector.expected - collector.length
        got = recv_some(sock, view[:min(room, len(view))], clock)
        if isinstance(got, StreamEnd):
            return got
        collector.add(view[:got])
    return StreamEnd.LIMIT


class BackgroundSender:
    """Runs ``send`` in a thread, then optionally half-closes; records a failure.

    Reading and writing overlap so a payload larger than the socket buffers
    cannot deadlock against a peer that echoes while it reads.
    """

    def __init__(
        self, sock: socket.socket, send: Callable[[], None], *, half_close_after: bool
    ) -> None:
        self.error: str | None = None
        self._send = send
        self._sock = sock
        self._half_close_after = half_close_after
        self._thread = threading.Thread(target=self._run, name="client-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._send()
            if self._half_close_after:
                half_close(self._sock)  # shutdown(SHUT_WR): our FIN, reading continues
        except SockspecError as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = describe_os_error(exc)

    def finish(self, timeout: float) -> None:
        """Wait for the sender; if the reader gave up first, wake it with shutdown()."""
        self._thread.join(min(timeout, SENDER_SETTLE_S))
        if not self._thread.is_alive():
            return
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # makes a blocked send() fail at once
        except OSError:
            pass
        self._thread.join(timeout + SENDER_JOIN_GRACE_S)
        if self.error is None:
            self.error = "sending stopped: the stream ended before all bytes were sent"
