"""HTTP client steps for scenarios that need more control than one ``fetch``.

``fetch``/``download`` in harness/reference do one whole exchange. Scenarios
that act in the middle of a response (send a pipelined request, half-close,
pause) or that move gigabytes need the exchange in pieces: send a raw request,
read the head, then read the body by their own rules. Every wait is bounded
by the timeout the caller passes.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from sockspec.errors import PeerError
from sockspec.protocol.http_response import NEED_DATA, ResponseHead, ResponseHeadParser
from sockspec.reference.client_streams import InactivityClock, recv_some
from sockspec.reference.http_fetch import build_get_request, peer_host_header
from sockspec.transport import StreamEnd, send_all

# One reusable receive buffer: large bodies stream through it and are never kept.
BODY_BUFFER_BYTES = 1024 * 1024
_HEAD_RECV_BYTES = 64 * 1024


def counting_bytes(size: int, start: int = 0) -> bytes:
    """``size`` bytes counting modulo 251 from ``start``: cheap to make and check, and
    251 is a prime, so no offset lines up with a buffer or block size."""
    first = start % 251
    return (bytes(range(251)) * ((first + size) // 251 + 1))[first:first + size]


@dataclass(frozen=True)
class ResponseStart:
    """The parsed head and the body bytes that arrived in the same reads."""

    head: ResponseHead
    body_start: bytes

    @property
    def status_line(self) -> str:
        return f"{self.head.version} {self.head.status} {self.head.reason}".strip()


def send_get(sock: socket.socket, target: str) -> None:
    """Send ``GET <target> HTTP/1.0`` exactly as given (no normalising, no re-encoding),
    with the Host a real client sends for the address ``sock`` is connected to."""
    send_all(sock, build_get_request(target, host=peer_host_header(sock)))


def read_response_start(sock: socket.socket, timeout: float, what: str) -> ResponseStart:
    """Read until the response head is complete; PeerError/MalformedResponse otherwise.

    ``timeout`` bounds each wait for data. ``what`` names the request in errors.
    """
    parser = ResponseHeadParser()
    view = memoryview(bytearray(_HEAD_RECV_BYTES))
    clock = InactivityClock(timeout, None, time.perf_counter())
    while (head := parser.next_event()) is NEED_DATA:
        got = recv_some(sock, view, clock)
        if got is StreamEnd.FIN:
            parser.receive_data(b"")  # next_event() raises MalformedResponse with the count
        elif isinstance(got, StreamEnd):
            raise PeerError(
                f"{what}: stream ended by {got.value} after {parser.bytes_received} bytes, "
                "before the end of the response head"
            )
        else:
            parser.receive_data(bytes(view[:got]))
    return ResponseStart(head, parser.trailing_data)


@dataclass(frozen=True)
class StreamedBody:
    """What arrived of a body that streamed through one reusable buffer."""

    length: int          # body bytes received, never more than asked for
    tail: bytes          # the last bytes received (at most the tail size asked for)
    end: StreamEnd       # LIMIT: every byte asked for arrived; else FIN/RST/TIMEOUT first
    elapsed_s: float

    @property
    def rate_gbps(self) -> float:
        return self.length / self.elapsed_s / 1e9 if self.elapsed_s > 0 else 0.0


def stream_body(
    sock: socket.socket,
    start: ResponseStart,
    expected: int,
    *,
    tail_size: int,
    idle_timeout: float,
    deadline_s: float,
) -> StreamedBody:
    """Receive ``expected`` body bytes through one 1 MiB buffer, keeping only the tail.

    recv_into the same buffer every time and never hash: memory stays at
    1 MiB whatever the size, and the cost is the kernel's copy alone.
    ``idle_timeout`` bounds each wait; ``deadline_s`` the whole body.
    """
    if tail_size < 1:
        raise ValueError(f"tail_size must be at least 1, not {tail_size}")
    started = time.perf_counter()
    clock = InactivityClock(idle_timeout, deadline_s, started)
    view = memoryview(bytearray(BODY_BUFFER_BYTES))
    first = start.body_start[:expected]
    length = len(first)
    tail = first[-tail_size:]
    end = StreamEnd.LIMIT
    while length < expected:
        got = recv_some(sock, view[: min(len(view), expected - length)], clock)
        if isinstance(got, StreamEnd):
            end = got
            break
        length += got
        if got >= tail_size:
            tail = bytes(view[got - tail_size:got])
        else:
            tail = (tail + bytes(view[:got]))[-tail_size:]
    return StreamedBody(length, tail, end, time.perf_counter() - started)
