"""Addresses and blocking stream-socket primitives shared by every layer.

Everything here is plain blocking I/O with explicit timeouts; no protocol
knowledge. Python retries EINTR itself (PEP 475), so loops here only deal with
short counts and end-of-stream.
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

from sockspec.errors import AddressError, ConnectError, PeerError

# sizeof(sun_path) on Linux is 108 bytes including the terminating NUL.
UNIX_PATH_MAX = 108

RECV_CHUNK = 256 * 1024


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET

    @property
    def sockaddr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def transport(self) -> str:
        return "tcp6" if self.family == socket.AF_INET6 else "tcp"

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"tcp:{self.hostport}"


@dataclass(frozen=True)
class UnixAddress:
    path: str

    family = socket.AF_UNIX
    transport = "unix"

    @property
    def sockaddr(self) -> str:
        return self.path

    def is_loopback(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"unix:{self.path}"


Address = TcpAddress | UnixAddress


def check_unix_path(path: str) -> None:
    """Refuse a Unix socket path that does not fit in sun_path."""
    size = len(os.fsencode(path))
    if size >= UNIX_PATH_MAX:
        raise AddressError(
            f"Unix socket path is {size} bytes; the limit is {UNIX_PATH_MAX - 1} "
            f"(sun_path holds {UNIX_PATH_MAX} bytes including the NUL): {path}"
        )


def parse_address(text: str) -> Address:
    """Parse ``tcp:HOST:PORT``, ``unix:PATH``, ``HOST:PORT`` or ``[V6]:PORT``."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise AddressError(f"empty Unix socket path in {text!r}")
        check_unix_path(path)
        return UnixAddress(path)
    rest = text[len("tcp:"):] if text.startswith("tcp:") else text
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
    else:
        host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise AddressError(f"bad address {text!r}: expected tcp:HOST:PORT or unix:PATH")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise AddressError(f"bad address {text!r}: {host!r} is not an IP address") from None
    try:
        port = int(port_text)
    except ValueError:
        raise AddressError(f"bad address {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise AddressError(f"bad address {text!r}: port {port} is out of range 1-65535")
    return TcpAddress(host, port)


def open_socket(address: Address) -> socket.socket:
    return socket.socket(address.family, socket.SOCK_STREAM)


def connect(address: Address, timeout: float, *, nodelay: bool = False) -> socket.socket:
    """Connect with a bounded wait; the socket keeps ``timeout`` for later I/O.

    Raises ConnectError with a one-line reason (refused, timed out, no such
    socket file, accept queue full).
    """
    sock = open_socket(address)
    try:
        sock.settimeout(timeout)
        if nodelay and isinstance(address, TcpAddress):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(address.sockaddr)
        return sock
    except BaseException as exc:
        sock.close()
        raise _connect_error(address, timeout, exc) from exc


def _connect_error(address: Address, timeout: float, exc: BaseException) -> BaseException:
    if isinstance(exc, TimeoutError):
        return ConnectError(f"connect to {address} timed out after {timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"connection refused by {address}")
    if isinstance(exc, FileNotFoundError):
        return ConnectError(f"no socket file at {address.sockaddr}")
    if isinstance(exc, BlockingIOError) and isinstance(address, UnixAddress):
        # A Unix listener with a full accept queue fails at once with EAGAIN
        # instead of retrying as TCP does.
        return ConnectError(f"accept queue of {address} is full (EAGAIN)")
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "error")
        return ConnectError(f"connect to {address} failed: {name} ({exc.strerror})")
    return exc


def send_all(sock: socket.socket, data: bytes | memoryview) -> int:
    """Send every byte, looping over short sends; return the count sent.

    On a reset or timeout raises PeerError naming how many bytes went out.
    """
    view = memoryview(data).cast("B")
    sent = 0
    while sent < len(view):
        try:
            sent += sock.send(view[sent:])
        except (TimeoutError, OSError) as exc:
            raise PeerError(
                f"send failed after {sent} of {len(view)} bytes: {describe_os_error(exc)}"
            ) from exc
    return sent


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes or raise PeerError (early EOF, reset, timeout)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        try:
            n = sock.recv_into(view[got:], min(size - got, RECV_CHUNK))
        except (TimeoutError, OSError) as exc:
            raise PeerError(
                f"receive failed after {got} of {size} bytes: {describe_os_error(exc)}"
            ) from exc
        if n == 0:
            raise PeerError(f"peer closed after {got} of {size} bytes")
        got += n
    return bytes(buf)


class StreamEnd(enum.Enum):
    """How the peer ended its side of the stream."""

    FIN = "FIN"          # orderly EOF: recv() returned 0
    RST = "RST"          # ECONNRESET (or EPIPE) from the kernel
    TIMEOUT = "timeout"  # nothing ended within the time limit
    LIMIT = "limit"      # stopped reading at the byte limit


def read_until_end(
    sock: socket.socket, timeout: float, limit: int = 64 * 1024 * 1024
) -> tuple[bytes, StreamEnd]:
    """Read until EOF, reset, the timeout, or ``limit`` bytes; say which."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        try:
            chunk = sock.recv(min(RECV_CHUNK, limit - total))
        except TimeoutError:
            return b"".join(chunks), StreamEnd.TIMEOUT
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), StreamEnd.RST
        if not chunk:
            return b"".join(chunks), StreamEnd.FIN
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks), StreamEnd.LIMIT


def set_io_timeouts(sock: socket.socket, seconds: float) -> None:
    """Bound every blocking send/recv/connect on ``sock`` by ``seconds`` (kernel timeouts).

    For a socket left in blocking mode (settimeout(None)). CPython implements
    settimeout() by poll()ing before every send and recv, one extra system call
    per operation; with SO_RCVTIMEO/SO_SNDTIMEO a blocked call instead fails
    with EAGAIN (BlockingIOError) when the time is up.
    """
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def half_close(sock: socket.socket) -> None:
    """Send our FIN (shutdown(SHUT_WR)) but keep reading."""
    sock.shutdown(socket.SHUT_WR)


def abort(sock: socket.socket) -> None:
    """Close with RST instead of FIN: SO_LINGER {on, 0} then close()."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror})"
    return str(exc) or type(exc).__name__
