"""Reference blocking client: echo (RFC 862) and HTTP/1.0 GET over TCP or Unix sockets.

A library for scenarios and the command ``python -m sockspec.reference.client``
(the command line lives in ``client_cli.py``; HTTP in ``http_fetch.py``). Every
function takes an address (``Address`` or text such as ``tcp:127.0.0.1:8080``,
``[::1]:8080``, ``unix:/tmp/s``), refuses anything that is not loopback, and
bounds every wait by ``timeout`` seconds of inactivity. Results are dataclasses
carrying evidence (byte counts, how the stream ended, digests, first differing
offset) rather than booleans. Failures raise sockspec.errors types with one-line
messages: AddressError, ConnectError, PeerError, UsageError.
"""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import dataclass

from sockspec.errors import PeerError, SockspecError, UsageError
from sockspec.reference.client_streams import (
    BackgroundSender,
    BodyCollector,
    InactivityClock,
    collect_until_end,
    first_difference,
    resolve_target,
)
from sockspec.reference.http_fetch import (
    HttpResponse,
    build_get_request,
    download,
    fetch,
    host_header,
)
from sockspec.reference.stream_digest import StreamDigest, file_digest
from sockspec.transport import (
    Address,
    StreamEnd,
    connect,
    describe_os_error,
    read_until_end,
    recv_exactly,
    send_all,
)

__all__ = [
    "EchoResult", "HttpResponse", "UploadResult", "build_get_request", "download",
    "echo_roundtrip", "fetch", "file_digest", "host_header", "ping_pong", "resolve_target",
    "upload_file",
]

# Linux sendfile() moves at most 0x7ffff000 bytes per call (MAX_RW_COUNT in
# include/linux/fs.h), so a file over 2 GiB needs several calls.
SENDFILE_MAX_BYTES = 0x7FFFF000
# Read at most this much past what we sent before calling the peer over-talkative.
EXCESS_READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class EchoResult:
    sent: bytes                    # the payload (sent whole unless send_error says otherwise)
    received: bytes                # what came back before the stream ended
    end: StreamEnd                 # how the peer ended its side
    elapsed_s: float
    send_error: str | None = None  # one-line reason if sending failed part-way

    def matches(self) -> bool:
        return self.received == self.sent

    def first_difference(self) -> int | None:
        """Offset of the first differing byte (or the shorter length); None if equal."""
        return first_difference(self.sent, self.received)

    @property
    def ok(self) -> bool:
        """Echoed exactly, then an orderly FIN, with nothing going wrong while sending."""
        return self.matches() and self.end is StreamEnd.FIN and self.send_error is None

    def describe(self) -> str:
        text = (
            f"sent {len(self.sent)} bytes, received {len(self.received)}, "
            f"ended by {self.end.value} after {self.elapsed_s:.3f} s"
        )
        if not self.matches():
            text += f", first difference at offset {self.first_difference()}"
        if self.send_error:
            text += f", send error: {self.send_error}"
        return text


def echo_roundtrip(
    address: str | Address,
    payload: bytes,
    *,
    timeout: float,
    chunk: int | None = None,
    half_close: bool = True,
) -> EchoResult:
    """Send ``payload`` (one send_all per ``chunk`` bytes if given) and read the echo.

    Sending runs in a thread while this one reads, so a payload larger than the
    socket buffers cannot deadlock. With ``half_close`` we shutdown(SHUT_WR)
    after the last byte and read until the peer ends the stream (FIN expected);
    without it we read exactly ``len(payload)`` bytes (end LIMIT) and close.
    """
    if chunk is not None and chunk <= 0:
        raise UsageError(f"chunk size must be positive, not {chunk}")
    target = resolve_target(address)
    step = chunk or max(len(payload), 1)
    started = time.perf_counter()
    sock = connect(target, timeout)

    def send_payload() -> None:
        for offset in range(0, len(payload), step):
            send_all(sock, memoryview(payload)[offset:offset + step])

    sender = BackgroundSender(sock, send_payload, half_close_after=half_close)
    try:
        limit = len(payload) + EXCESS_READ_LIMIT if half_close else len(payload)
        received, end = read_until_end(sock, timeout, limit)
    finally:
        sender.finish(timeout)
        sock.close()
    return EchoResult(
        sent=payload,
        received=received,
        end=end,
        elapsed_s=time.perf_counter() - started,
        send_error=sender.error,
    )


@dataclass(frozen=True)
class UploadResult:
    size: int                      # bytes in the file
    sent: int                      # bytes the kernel accepted from sendfile()
    received_length: int           # bytes the peer sent back (an echo returns them all)
    received_digest: str
    end: StreamEnd                 # how the peer ended the stream after our FIN
    elapsed_s: float
    send_error: str | None = None

    def describe(self) -> str:
        text = (
            f"sent {self.sent} of {self.size} bytes, received {self.received_length} "
            f"({self.received_digest}), ended by {self.end.value} after {self.elapsed_s:.3f} s"
        )
        return text + (f", send error: {self.send_error}" if self.send_error else "")


def upload_file(
    address: str | Address,
    file_path: str | os.PathLike[str],
    *,
    timeout: float,
    hasher: str = "xxh3",
) -> UploadResult:
    """sendfile() a whole file, half-close, and hash whatever comes back until EOF.

    Reading runs concurrently with sending, so an echo server can return the file
    while it is being sent (compare ``received_digest`` with ``file_digest``);
    a discarding sink just closes after our FIN. Reads stop at size + 64 KiB.
    """
    target = resolve_target(address)
    with open(file_path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        started = time.perf_counter()
        sock = connect(target, timeout)
        progress = _SendProgress()

        def send_file() -> None:
            _sendfile_all(sock, source.fileno(), size, timeout, progress)

        sender = BackgroundSender(sock, send_file, half_close_after=True)
        returned = BodyCollector(size + EXCESS_READ_LIMIT, StreamDigest(hasher))
        try:
            end = collect_until_end(sock, returned, InactivityClock(timeout, None, started))
        finally:
            sender.finish(timeout)
            sock.close()
    return UploadResult(
        size=size,
        sent=progress.sent,
        received_length=returned.length,
        received_digest=returned.digest.hexdigest(),
        end=end,
        elapsed_s=time.perf_counter() - started,
        send_error=sender.error,
    )


@dataclass
class _SendProgress:
    sent: int = 0


def _sendfile_all(
    sock: socket.socket, file_fd: int, count: int, timeout: float, progress: _SendProgress
) -> None:
    # A socket with a timeout is O_NONBLOCK underneath, so os.sendfile() raises
    # BlockingIOError when the send buffer is full; poll() bounds that wait.
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    while progress.sent < count:
        offset = progress.sent
        try:
            moved = os.sendfile(
                sock.fileno(), file_fd, offset, min(count - offset, SENDFILE_MAX_BYTES)
            )
        except BlockingIOError:
            if not poller.poll(timeout * 1000):
                raise PeerError(f"sendfile timed out after {offset} of {count} bytes") from None
            continue
        except OSError as exc:
            raise PeerError(
                f"sendfile failed after {offset} of {count} bytes: {describe_os_error(exc)}"
            ) from exc
        if moved == 0:
            raise SockspecError(f"file ended after {offset} of {count} bytes (truncated?)")
        progress.sent += moved


def ping_pong(
    address: str | Address, size: int, count: int, *, timeout: float, nodelay: bool = True
) -> list[float]:
    """Round-trip ``count`` messages of ``size`` bytes through an echo; seconds each.

    Raises PeerError if an echo differs, the peer closes, resets or times out.
    """
    if size < 1 or count < 1:
        raise UsageError(f"ping needs size >= 1 and count >= 1 (got {size}, {count})")
    target = resolve_target(address)
    # Printable bytes: a ping judges timing, and must not trip over a server's
    # NUL handling (binary-integrity's business). 89 letters: prime, no alignment.
    message = bytes(33 + i % 89 for i in range(size))
    round_trips: list[float] = []
    with connect(target, timeout, nodelay=nodelay) as sock:
        for round_index in range(count):
            started = time.perf_counter()
            send_all(sock, message)
            echoed = recv_exactly(sock, size)
            round_trips.append(time.perf_counter() - started)
            if echoed != message:
                raise PeerError(
                    f"round {round_index}: echo differs at offset "
                    f"{first_difference(message, echoed)}"
                )
    return round_trips


if __name__ == "__main__":
    # `python -m sockspec.reference.client` runs the command line, which imports this
    # library: run it by name, so that this module never imports its own command line.
    import runpy

    runpy.run_module("sockspec.reference.client_cli", run_name="__main__", alter_sys=True)
