"""Stream shapes: how a client cuts, times and paces the bytes it moves.

The kernel may split or merge a byte stream anywhere; these drivers make it do
so on purpose. A message in pieces with pauses (the server's recv() sees each
piece alone), data and FIN in one TCP segment (recv() returns the data, the
next recv() 0), a reader that takes its bytes in bursts after pauses (the
server's send() blocks or comes up short), many clients holding connections at
once, and round-trip statistics. Every wait is bounded by a timeout the caller
passes; the pauses are the trigger of a scenario, never a way to wait for the
server.
"""

from __future__ import annotations

import math
import random
import select
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sockspec.drivers.peer import ReadAlone, read_everything
from sockspec.errors import PeerError, SockspecError
from sockspec.protocol.http_response import MalformedResponse, ResponseHead, parse_response_head
from sockspec.transport import (
    Address,
    StreamEnd,
    connect,
    describe_os_error,
    half_close,
    send_all,
)

# 64 printable characters: payloads built from them carry no NUL, CR or LF, so a
# scenario about pacing cannot trip over a server's handling of odd byte values
# (that is the binary-integrity family's business).
_PRINTABLE_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_PRINTABLE = bytes(_PRINTABLE_ALPHABET[i % 64] for i in range(256))


def printable_payload(size: int, seed: int) -> bytes:
    """``size`` reproducible pseudo-random bytes from a 64-character printable alphabet."""
    return random.Random(seed).randbytes(size).translate(_TO_PRINTABLE)


# ------------------------------------------------------------ shaping sends


@dataclass(frozen=True)
class PiecesSent:
    """How far sending a message in pieces got."""

    pieces_sent: int
    bytes_sent: int
    error: str | None  # one-line reason if a send failed (the server closed or reset early)
    read_alone: str | None = None  # whether the server read each piece before the next


def send_in_pieces(sock: socket.socket, pieces: Sequence[bytes], pause_s: float,
                   read_wait_s: float | None = None) -> PiecesSent:
    """Send each piece whole, pausing ``pause_s`` between pieces; stop at the first failure.

    With TCP_NODELAY set on ``sock`` every piece leaves as its own segment at
    once, so a server reading during a pause sees that piece alone. With
    ``read_wait_s``, after each pause the next piece also waits until the server
    has read every byte sent so far (sockspec.drivers.peer.ReadAlone), so its
    recv() returns each piece alone even when the scheduler kept it from running
    for the whole pause; a server that leaves a piece unread that long has
    stopped reading, and the rest goes without waiting.
    """
    alone = ReadAlone(lambda: read_everything(sock), read_wait_s) if read_wait_s else None
    sent_bytes = 0
    for index, piece in enumerate(pieces):
        if index:
            time.sleep(pause_s)
            if alone is not None:
                alone.before_next(index)
        try:
            send_all(sock, piece)
        except SockspecError as exc:
            return PiecesSent(index, sent_bytes, str(exc), alone and alone.words())
        sent_bytes += len(piece)
    return PiecesSent(len(pieces), sent_bytes, None, alone and alone.words())


def send_with_fin(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` and our FIN together: for TCP, one segment carrying both.

    TCP_CORK holds the data back; shutdown(SHUT_WR) then sets FIN on the still
    unsent tail segment (tcp_send_fin piggybacks on it) and pushes it, so the
    server's first recv() returns the data with the FIN already queued behind
    it. ``data`` must fit one segment: loopback's MSS is about 64 KiB. Checked
    on this kernel in a private network namespace: 9000 bytes sent this way
    cost 2 segments in all (data+FIN, the peer's ACK) against 4 for a plain
    send then shutdown. A Unix stream has no segments; send then shutdown
    comes as close as it gets.
    """
    is_tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
    if is_tcp:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    send_all(sock, data)
    half_close(sock)
    if is_tcp:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def limit_receive_buffer(sock: socket.socket, size: int) -> None:
    """Fix SO_RCVBUF (the kernel doubles it) and so stop receive-buffer autotuning.

    A reader that pauses then holds at most about 2 * ``size`` unread bytes, so
    the rest of what the server sends must wait in the server's own send buffer.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


# --------------------------------------------------------- shaping receives


@dataclass(frozen=True)
class BurstRead:
    """What a bursty reader collected."""

    data: bytes
    end: StreamEnd  # LIMIT: every expected byte arrived; else FIN/RST/TIMEOUT came first
    bursts: int
    elapsed_s: float


def read_in_bursts(
    sock: socket.socket,
    expected: int,
    *,
    burst_bytes: int,
    pause_s: float,
    idle_timeout: float,
) -> BurstRead:
    """Read ``expected`` bytes as: pause, then ``burst_bytes`` at full speed, repeated.

    While the reader pauses, the server's send buffer fills and its send()
    blocks or returns a short count; a server that drops what did not fit
    shows up as missing bytes. ``idle_timeout`` bounds each wait for data.
    """
    if burst_bytes < 1:
        raise ValueError(f"burst_bytes must be positive, not {burst_bytes}")
    buffer = bytearray(expected)
    view = memoryview(buffer)
    received = 0
    bursts = 0
    end = StreamEnd.LIMIT
    started = time.perf_counter()
    sock.settimeout(idle_timeout)
    while received < expected and end is StreamEnd.LIMIT:
        time.sleep(pause_s)
        stop = min(expected, received + burst_bytes)
        bursts += 1
        while received < stop:
            try:
                count = sock.recv_into(view[received:stop])
            except TimeoutError:
                end = StreamEnd.TIMEOUT
                break
            except (ConnectionResetError, BrokenPipeError):
                end = StreamEnd.RST
                break
            if count == 0:
                end = StreamEnd.FIN
                break
            received += count
    view.release()
    return BurstRead(bytes(buffer[:received]), end, bursts, time.perf_counter() - started)


class PacedSink:
    """A body sink for ``fetch``: after every ``burst_bytes`` it pauses ``pause_s``.

    The pause happens inside the reading loop, so the client stops reading and
    the server's sends block while it lasts.
    """

    def __init__(self, burst_bytes: int, pause_s: float) -> None:
        self.burst_bytes = burst_bytes
        self.pause_s = pause_s
        self.pauses = 0
        self._in_burst = 0

    def __call__(self, chunk: memoryview) -> None:
        self._in_burst += len(chunk)
        while self._in_burst >= self.burst_bytes:
            self._in_burst -= self.burst_bytes
            self.pauses += 1
            time.sleep(self.pause_s)


# ------------------------------------------------------- many at once


@dataclass(frozen=True)
class ConcurrentEchoes:
    """Echo clients that held their connections open at the same time."""

    clients: int
    echoed: tuple[int, ...]     # indexes of clients whose whole message came back intact
    wrong: tuple[str, ...]      # "client 3: ..." for clients that got something else
    silent: tuple[int, ...]     # clients still waiting when the time ran out
    elapsed_s: float


def echo_many_at_once(address: Address, clients: int, timeout: float) -> ConcurrentEchoes:
    """Connect ``clients`` sockets, send one message on each, then await every echo.

    All connections stay open until every echo arrived or ``timeout`` (one
    deadline for the whole group) ran out, so a server that serves one
    connection at a time can answer only the first. Raises ConnectError if a
    connect fails.
    """
    started = time.perf_counter()
    socks: list[socket.socket] = []
    try:
        for _ in range(clients):
            socks.append(connect(address, timeout))
        messages = [f"concurrent client {i:03d} of {clients}\n".encode() for i in range(clients)]
        for sock, message in zip(socks, messages, strict=True):
            send_all(sock, message)
        return _await_echoes(socks, messages, started + timeout, started)
    finally:
        for sock in socks:
            sock.close()


def _await_echoes(
    socks: list[socket.socket], messages: list[bytes], deadline: float, started: float
) -> ConcurrentEchoes:
    received = {fd: bytearray() for fd in (s.fileno() for s in socks)}
    index_of = {sock.fileno(): i for i, sock in enumerate(socks)}
    by_fd = {sock.fileno(): sock for sock in socks}
    echoed: list[int] = []
    wrong: list[str] = []
    poller = select.poll()  # poll, not select: descriptors may exceed 1023
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    waiting = set(by_fd)
    while waiting and (left := deadline - time.perf_counter()) > 0:
        for fd, _ in poller.poll(left * 1000):
            index = index_of[fd]
            expected = messages[index]
            try:
                chunk = by_fd[fd].recv(len(expected) - len(received[fd]))
            except OSError as exc:
                chunk, problem = b"", describe_os_error(exc)
            else:
                problem = "" if chunk else "closed (FIN) before the whole echo"
            received[fd] += chunk
            done = received[fd] == expected
            if problem or done or not expected.startswith(bytes(received[fd])):
                poller.unregister(fd)
                waiting.discard(fd)
                if done:
                    echoed.append(index)
                else:
                    wrong.append(f"client {index}: got {bytes(received[fd])!r}"
                                 + (f", {problem}" if problem else ""))
    return ConcurrentEchoes(
        clients=len(socks),
        echoed=tuple(sorted(echoed)),
        wrong=tuple(wrong),
        silent=tuple(sorted(index_of[fd] for fd in waiting)),
        elapsed_s=time.perf_counter() - started,
    )


def start_stalled_download(
    address: Address, request: bytes, timeout: float, receive_buffer: int
) -> socket.socket:
    """Send ``request`` and stop reading once the response has begun; return the socket.

    The receive buffer is limited so the server's send must block while the
    client keeps the connection open without reading. Raises ConnectError, or
    PeerError if the request cannot be sent or no response byte arrives within
    ``timeout``.
    """
    sock = connect(address, timeout)
    try:
        limit_receive_buffer(sock, receive_buffer)
        send_all(sock, request)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        if not poller.poll(timeout * 1000):
            raise PeerError(f"no response byte within {timeout:g} s of the request")
    except BaseException:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------- small answers


@dataclass(frozen=True)
class SmallResponse:
    """A whole HTTP response read into memory (small bodies only)."""

    head: ResponseHead | None   # None when no complete, valid head arrived
    problem: str                # why head is None, else ""
    body: bytes
    received: int               # bytes received in total

    @property
    def status_line(self) -> str:
        if self.head is None:
            return f"(none: {self.problem})"
        return f"{self.head.version} {self.head.status} {self.head.reason}".strip()


def parse_small_response(data: bytes) -> SmallResponse:
    """Split a response read to its end into head and body; never raises."""
    head_bytes, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return SmallResponse(None, "no blank line ending the head", b"", len(data))
    try:
        head = parse_response_head(head_bytes + separator)
    except MalformedResponse as exc:
        return SmallResponse(None, str(exc), b"", len(data))
    return SmallResponse(head, "", body, len(data))


# ------------------------------------------------------------ round trips


# At most this many samples of a latency figure (best_sample).
MEDIAN_SAMPLES = 3
T = TypeVar("T")


def best_sample(take: Callable[[], T], key: Callable[[T], object],
                enough: Callable[[T], bool], at_most: int = MEDIAN_SAMPLES) -> tuple[T, list[T]]:
    """Take samples until ``enough(sample)`` holds or ``at_most`` are taken; return the
    lowest by ``key`` and all of them, in order.

    For a median round trip judged against a bound: a busy machine's scheduler only
    ever adds delay, and only to some samples; a stall the server causes (Nagle
    waiting for a delayed ACK) is in every one. The best median keeps the stall and
    drops the noise (a CI run once failed a correct server's 20 ms median).
    """
    taken = [take()]
    while not enough(taken[-1]) and len(taken) < at_most:
        taken.append(take())
    return min(taken, key=key), taken


def samples_words(medians_ms: Sequence[float]) -> str:
    """For the evidence: the medians of the samples best_sample() took, the best judged."""
    if len(medians_ms) == 1:
        return f"{medians_ms[0]:.2f} (one sample)"
    return (" ".join(f"{m:.2f}" for m in medians_ms)
            + f" ({len(medians_ms)} samples; the best, {min(medians_ms):.2f}, is judged)")


@dataclass(frozen=True)
class LatencySummary:
    """Round-trip percentiles in milliseconds (nearest-rank for p90 and p99)."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    count: int

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> LatencySummary:
        if not samples:
            raise ValueError("no round trips to summarise")
        ordered = sorted(s * 1000.0 for s in samples)
        return cls(
            p50_ms=statistics.median(ordered),
            p90_ms=_nearest_rank(ordered, 90),
            p99_ms=_nearest_rank(ordered, 99),
            max_ms=ordered[-1],
            count=len(ordered),
        )

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_p50_ms": self.p50_ms,
            f"{prefix}_p90_ms": self.p90_ms,
            f"{prefix}_p99_ms": self.p99_ms,
            f"{prefix}_max_ms": self.max_ms,
            f"{prefix}_count": self.count,
        }


def _nearest_rank(ordered: Sequence[float], percent: float) -> float:
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
