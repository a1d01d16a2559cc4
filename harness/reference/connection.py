"""One accepted connection of the reference server: echo or HTTP, blocking I/O.

Every function here moves bytes and nothing else; what is owed to the client
is decided in harness/protocol/echo.py and harness/protocol/http.py. Each
connection runs in its own thread, holds a bounded amount of memory (one
64 KiB echo buffer, or an 8 KiB request head) and waits at most the idle
timeout for any single client action.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import stat
import sys
import time
from dataclasses import dataclass

from sockspec.errors import UsageError
from sockspec.protocol import http
from sockspec.protocol.echo import ECHO_BUFFER_BYTES, echo_until_fin
from sockspec.transport import set_io_timeouts

PROFILES = ("echo", "http")
DEFAULT_IDLE_TIMEOUT = 30.0
# After our FIN, read and discard what the client still sends (a pipelined
# request, an unread body) for this long / this much before close(): closing
# with unread input sends an RST, which can destroy response bytes the client
# has not read yet.
DRAIN_SECONDS = 2.0
DRAIN_LIMIT_BYTES = 8 * 1024 * 1024
# One sendfile() call moves at most 0x7ffff000 bytes (MAX_RW_COUNT,
# include/linux/fs.h), so a larger file always needs several calls.
MAX_RW_COUNT = 0x7FFFF000
_HEAD_RECV_BYTES = 4096


@dataclass(frozen=True)
class ServeConfig:
    profile: str  # "echo" or "http"
    root: str | None = None  # the directory served by the http profile
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


def make_config(profile: str, root: str | None, idle_timeout: float) -> ServeConfig:
    """Validate the serving options; raise UsageError with a one-line reason."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    if not idle_timeout > 0:
        raise UsageError(f"--idle-timeout must be positive, not {idle_timeout:g}")
    if profile == "http":
        if root is None:
            raise UsageError("--profile http needs -r ROOT (the directory to serve)")
        if not os.path.isdir(root):
            raise UsageError(f"root {root!r} is not a directory")
    return ServeConfig(profile, root, idle_timeout)


# ------------------------------------------------------------ one connection


def handle_connection(conn: socket.socket, config: ServeConfig) -> None:
    """Serve one accepted connection; never raises (it runs as a thread's target)."""
    try:
        conn.settimeout(config.idle_timeout)
        if config.profile == "echo":
            serve_echo(conn, config)
        else:
            serve_http(conn, config)
    except OSError:
        # The client reset (ECONNRESET, EPIPE: SIGPIPE is ignored, so a write
        # to a closed peer is an exception here, not a death), vanished, or
        # stayed idle past the timeout (TimeoutError). Its connection ends;
        # the server does not.
        pass
    except Exception as exc:  # a bug: report it, keep serving others
        print(f"server: connection failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        conn.close()


def serve_echo(conn: socket.socket, config: ServeConfig) -> None:
    # Truly blocking I/O, one system call per recv and per send; the kernel
    # bounds an idle peer (SO_RCVTIMEO/SO_SNDTIMEO expiry raises EAGAIN).
    conn.settimeout(None)
    set_io_timeouts(conn, config.idle_timeout)
    echo_until_fin(conn.recv_into, conn.sendall, bytearray(ECHO_BUFFER_BYTES))
    close_gracefully(conn, config)


def serve_http(conn: socket.socket, config: ServeConfig) -> None:
    assert config.root is not None
    try:
        event = read_request(conn, config.idle_timeout)
    except TimeoutError:
        event = http.ParseError(408, "request head not complete in time")
    if isinstance(event, http.ConnectionClosed):
        return
    if isinstance(event, http.ParseError):
        error_status: int | None = event.status
    else:
        error_status = serve_file(conn, config.root, event.target, config.idle_timeout)
    if error_status is not None:
        conn.sendall(http.error_response(error_status))
    close_gracefully(conn, config)


def serve_file(conn: socket.socket, root: str, target: str, idle_timeout: float) -> int | None:
    """Send the 200 response for ``target``, or return the error status owed instead."""
    resolved = http.resolve_path(root, target)
    if isinstance(resolved, http.Refused):
        return resolved.status
    try:
        # O_NOFOLLOW: resolve_path returned a path without symlinks; if one
        # appeared since, refuse (ELOOP) rather than follow it out of the root.
        fd = os.open(resolved.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        return 404 if exc.errno == errno.ENOENT else 403
    try:
        info = os.fstat(fd)  # the size sent is the size at open time
        if not stat.S_ISREG(info.st_mode):
            return 403
        conn.sendall(http.response_head(info.st_size))
        send_file(conn, fd, info.st_size, idle_timeout)
    finally:
        os.close(fd)
    return None


def read_request(conn: socket.socket, time_limit: float) -> http.Event:
    """Receive until the parser has a terminal event; the whole head gets ``time_limit`` s."""
    parser = http.RequestParser()
    deadline = time.monotonic() + time_limit
    while isinstance(event := parser.next_event(), http.NeedData):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request head not complete in time")
        conn.settimeout(remaining)
        parser.receive_data(conn.recv(_HEAD_RECV_BYTES))
    conn.settimeout(time_limit)
    return event


def send_file(conn: socket.socket, fd: int, size: int, idle_timeout: float) -> int:
    """Send ``size`` bytes of ``fd`` with sendfile(); return the count sent.

    Loops on the returned count: a call moves at most MAX_RW_COUNT bytes and
    fewer when the socket buffer fills. Returns early if sendfile() returns 0
    (the file shrank after fstat). Works for TCP and AF_UNIX sockets.
    """
    out = conn.fileno()
    offset = 0
    while offset < size:
        try:
            sent = os.sendfile(out, fd, offset, min(size - offset, MAX_RW_COUNT))
        except BlockingIOError:
            # settimeout() put the socket in O_NONBLOCK: wait for room, bounded.
            wait_writable(conn, idle_timeout)
            continue
        except InterruptedError:
            continue  # PEP 475 already retries EINTR; kept so the loop is obviously safe
        if sent == 0:
            break
        offset += sent
    return offset


def wait_writable(conn: socket.socket, timeout: float) -> None:
    """Block until the socket accepts more bytes; TimeoutError after ``timeout`` s.

    poll(), not select(): descriptors above 1023 are normal with 1000 clients.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLOUT)
    if not poller.poll(timeout * 1000):
        raise TimeoutError(f"client did not read for {timeout:g} s")


def close_gracefully(conn: socket.socket, config: ServeConfig) -> None:
    """Send our FIN, then discard input until EOF or a bounded time/byte count.

    The caller closes the socket. Draining first means close() finds no unread
    input, so the kernel sends no RST while the client still reads the response.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        return  # the peer is already gone
    deadline = time.monotonic() + min(DRAIN_SECONDS, config.idle_timeout)
    scratch = bytearray(16 * 1024)
    drained = 0
    while drained < DRAIN_LIMIT_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        conn.settimeout(remaining)
        try:
            count = conn.recv_into(scratch)
        except OSError:
            return
        if count == 0:
            return
        drained += count
