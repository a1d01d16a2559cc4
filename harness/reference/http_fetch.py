"""HTTP/1.0 GET for the reference client: one request, a streamed, hashed body.

Bodies never sit in memory whole: they stream through one reusable 1 MiB
buffer (recv_into), are hashed, and only their first and last few KiB are kept
as evidence. Head parsing is the pure ``sockspec.protocol.http_response``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from sockspec.errors import PeerError, UsageError
from sockspec.protocol.http_response import NEED_DATA, ResponseHeadParser
from sockspec.reference.client_streams import (
    RECV_BUFFER_BYTES,
    BodyCollector,
    BodySink,
    InactivityClock,
    collect_until_end,
    recv_some,
    resolve_target,
)
from sockspec.reference.stream_digest import StreamDigest
from sockspec.transport import Address, StreamEnd, TcpAddress, connect, send_all

# After Content-Length bytes, read at most this much more before giving up on EOF.
EXCESS_READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    version: str
    headers: tuple[tuple[str, str], ...]   # (lower-cased name, value)
    expected_length: int | None    # Content-Length, or None when the body ends at EOF
    body_length: int               # body bytes received (never more than expected_length)
    digest: str                    # "xxh3_64:<hex>" of the received body
    body_first_bytes: bytes        # first few KiB of the body
    body_last_bytes: bytes         # last few KiB of the body
    end: StreamEnd                 # how the stream ended (LIMIT: we stopped at Content-Length)
    excess_bytes: int              # bytes the peer sent past Content-Length
    elapsed_s: float

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    @property
    def complete(self) -> bool:
        """All body bytes arrived (Content-Length reached, or EOF when there is none)."""
        if self.expected_length is None:
            return self.end is StreamEnd.FIN
        return self.body_length == self.expected_length

    def problem(
        self,
        *,
        expect_status: int | None = 200,
        expect_length: int | None = None,
        expect_digest: str | None = None,
    ) -> str | None:
        """One-line reason this response fails the expectations, or None."""
        if expect_status is not None and self.status != expect_status:
            return f"status {self.status} {self.reason}, expected {expect_status}"
        if not self.complete:
            expected = "until EOF" if self.expected_length is None else f"of {self.expected_length}"
            return (
                f"short body: received {self.body_length} {expected} bytes, "
                f"stream ended by {self.end.value}"
            )
        if self.end is StreamEnd.RST:
            return f"connection reset after the complete body ({self.body_length} bytes)"
        if self.excess_bytes:
            return f"{self.excess_bytes} bytes after the {self.expected_length}-byte body"
        if expect_length is not None and self.body_length != expect_length:
            return f"body is {self.body_length} bytes, expected {expect_length}"
        if expect_digest is not None and self.digest != expect_digest:
            return f"body digest {self.digest}, expected {expect_digest}"
        return None

    def describe(self) -> str:
        return (
            f"HTTP {self.status} {self.reason}, {self.body_length} body bytes, "
            f"{self.digest}, ended by {self.end.value} after {self.elapsed_s:.3f} s"
        )


# Over a Unix socket there is no host to name: curl --unix-socket with
# http://localhost/... sends "Host: localhost", and so do we.
UNIX_HOST = "localhost"


def host_header(address: Address) -> str:
    """The Host value a real client sends for ``address``, as curl does for the URL it
    was given: ``127.0.0.1:PORT`` over tcp, ``[::1]:PORT`` over tcp6, ``localhost``
    over a Unix socket."""
    return address.hostport if isinstance(address, TcpAddress) else UNIX_HOST


def peer_host_header(sock: socket.socket) -> str:
    """``host_header`` of the address ``sock`` is connected to."""
    if sock.family == socket.AF_UNIX:
        return UNIX_HOST
    host, port = sock.getpeername()[:2]
    return TcpAddress(host, port).hostport


def build_get_request(path: str, *, host: str | None) -> bytes:
    """``GET path HTTP/1.0`` with ``Host: host``: every request carries one, as real
    clients' do (``host_header``). ``host=None`` leaves it out, for the one kind of
    scenario whose subject is a request without Host."""
    if not path or any(c in path for c in " \r\n\t\0"):
        raise UsageError(f"request path {path!r} is empty or contains whitespace/NUL")
    if host is not None and (not host or any(c in host for c in " \r\n\t\0")):
        raise UsageError(f"Host {host!r} is empty or contains whitespace/NUL")
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {path} HTTP/1.0\r\n{host_line}\r\n".encode("latin-1")


def fetch(
    address: str | Address,
    path: str,
    *,
    timeout: float,
    sink: BodySink | None = None,
    hasher: str = "xxh3",
    host: str | None = None,
    await_close: bool = True,
    deadline_s: float | None = None,
) -> HttpResponse:
    """GET ``path`` with HTTP/1.0 and stream the body through a 1 MiB buffer.

    ``timeout`` bounds connect and each wait for data; ``deadline_s`` (optional)
    bounds the whole exchange. ``sink`` receives each body chunk as a memoryview
    of the reused buffer (consume it at once, e.g. ``file.write``). With
    ``await_close`` we keep reading after Content-Length to see how the server
    ends the stream and whether it sends extra bytes; otherwise end is LIMIT.
    The request carries ``Host: host``, by default ``host_header(address)``.

    Raises ConnectError, PeerError (no complete head) or MalformedResponse; a
    short or reset body is reported in the result, not raised (see ``download``).
    """
    target = resolve_target(address)
    request = build_get_request(path, host=host if host is not None else host_header(target))
    started = time.perf_counter()
    clock = InactivityClock(timeout, deadline_s, started)
    view = memoryview(bytearray(RECV_BUFFER_BYTES))
    with connect(target, timeout) as sock:
        send_all(sock, request)
        parser = ResponseHeadParser()
        while (head := parser.next_event()) is NEED_DATA:
            got = recv_some(sock, view, clock)
            if got is StreamEnd.FIN:
                parser.receive_data(b"")  # next_event() now raises MalformedResponse
            elif isinstance(got, StreamEnd):
                raise PeerError(
                    f"GET {path} from {target}: stream ended by {got.value} after "
                    f"{parser.bytes_received} bytes, before the end of the response head"
                )
            else:
                parser.receive_data(bytes(view[:got]))
        expected = 0 if head.has_no_body else head.content_length
        body = BodyCollector(expected, StreamDigest(hasher), sink)
        body.add(memoryview(parser.trailing_data))
        end = collect_until_end(sock, body, clock)
        if end is StreamEnd.LIMIT and await_close:
            end = _read_to_close(sock, view, clock, body)
    return HttpResponse(
        status=head.status,
        reason=head.reason,
        version=head.version,
        headers=head.headers,
        expected_length=expected,
        body_length=body.length,
        digest=body.digest.hexdigest(),
        body_first_bytes=bytes(body.evidence.first),
        body_last_bytes=bytes(body.evidence.last),
        end=end,
        excess_bytes=body.excess,
        elapsed_s=time.perf_counter() - started,
    )


def download(
    address: str | Address,
    path: str,
    *,
    expect_length: int | None,
    expect_digest: str | None,
    timeout: float,
    sink: BodySink | None = None,
    await_close: bool = True,
) -> HttpResponse:
    """``fetch`` and insist on 200, a complete body, and the expected length/digest.

    Raises PeerError with a one-line reason (status, short body with counts and
    FIN/RST/timeout, reset, extra bytes, length or digest mismatch). With
    ``await_close=False`` how the stream ends after the body is not judged.
    """
    response = fetch(address, path, timeout=timeout, sink=sink, await_close=await_close)
    reason = response.problem(expect_length=expect_length, expect_digest=expect_digest)
    if reason is not None:
        raise PeerError(f"GET {path} from {resolve_target(address)}: {reason}")
    return response


def _read_to_close(
    sock: socket.socket, view: memoryview, clock: InactivityClock, body: BodyCollector
) -> StreamEnd:
    """After the declared body: read on to see FIN/RST and count extra bytes (bounded)."""
    while body.excess < EXCESS_READ_LIMIT:
        got = recv_some(sock, view[:EXCESS_READ_LIMIT], clock)
        if isinstance(got, StreamEnd):
            return got
        body.excess += got
    return StreamEnd.LIMIT
