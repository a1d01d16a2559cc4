"""Leave a connection while the server still owes an echo it has not written yet.

A send() to a peer that is gone fails with EPIPE and raises SIGPIPE, which
kills a server that left SIGPIPE at its default action. Racing a reset
against the server's echo proves that only when the reset wins; these
functions set the kernel state up first and check it, so the server's next
send() is certain to meet a dead peer:

- Unix stream: shutdown(SHUT_RD) on our socket sets SEND_SHUTDOWN on the
  server's (net/unix/af_unix.c, unix_shutdown). Every send() it starts after
  that fails with EPIPE and raises SIGPIPE (unix_stream_sendmsg, ``pipe_err``),
  and we shut our reading side before sending a byte: the whole echo is owed.
- TCP: an RST that reaches a socket in CLOSE_WAIT (our FIN received) sets its
  error to EPIPE, not ECONNRESET (net/ipv4/tcp_input.c, tcp_reset), and a
  send() then fails with EPIPE and raises SIGPIPE (sk_stream_error), also a
  send() blocked at the time. So we send without reading, a chunk at a
  time, until the kernel (sock_diag) reports the server's send buffer full
  (its echo send() blocks) with our bytes unread; then our FIN is
  acknowledged (our state FIN_WAIT2: the server is in CLOSE_WAIT) and we
  reset. Nothing can move in between: we read nothing, so its send buffer
  stays full and the echo it owes stays unwritten.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from sockspec.drivers.peer import (
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    peer_socket,
    queued_on,
    tcp_state,
    unsent_on,
    wait_for,
)
from sockspec.errors import SockspecError
from sockspec.transport import Address, TcpAddress, abort, connect, describe_os_error, send_all

# Our receive buffer (the kernel doubles it) holds next to nothing, so the
# server's echo stalls once its own send buffer is full; chunks are sent one by
# one, each well inside the server's receive window (128 KiB by default,
# tcp_rmem), so the FIN after the last one reaches it while it is stalled.
SMALL_RECEIVE_BUFFER = 4096
SEND_BUFFER = 64 * 1024
CHUNK = b"sockspec owed echo " * 862          # 16378 printable bytes, no NUL/CR/LF
UNIX_OWED_BYTES = 64 * 1024
TCP_MAX_BYTES = 64 * 1024 * 1024              # a server that buffers without bound
QUIET_S = 0.1
DELAYED_ACK_S = 0.5


@dataclass(frozen=True)
class Owed:
    """What the server owed when we left: the proof that its next send() meets a dead peer."""

    sent: int
    echoed: int        # echo bytes that reached us (queued on our socket: we read none)
    owed: int          # bytes the server has not yet handed to its kernel
    server_blocked: bool | None = None   # its send buffer full (None: not known)

    def describe(self) -> str:
        blocked = {True: ", its send() blocked", False: ", its send buffer not full",
                   None: ""}[self.server_blocked]
        return (f"{self.sent} bytes sent, {self.echoed} echoed, {self.owed} still to be "
                f"written by the server when we left{blocked}")


def leave_while_echo_owed(address: Address, timeout: float) -> Owed:
    """Leave so that the server's next send() fails with EPIPE (SIGPIPE if not ignored).

    Raises SockspecError when the state could not be set up (the server never
    took our bytes, or echoed everything before our FIN reached it).
    """
    if isinstance(address, TcpAddress):
        return _tcp_reset_in_close_wait(address, timeout)
    sock = connect(address, timeout)
    try:
        sock.shutdown(socket.SHUT_RD)
        sent = send_all(sock, (CHUNK * (UNIX_OWED_BYTES // len(CHUNK) + 1))[:UNIX_OWED_BYTES])
    finally:
        sock.close()
    return Owed(sent, 0, sent)


def _tcp_reset_in_close_wait(address: TcpAddress, timeout: float) -> Owed:
    deadline = time.monotonic() + timeout
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        # Before connect(): the window scale is chosen at the handshake.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.settimeout(timeout)
        try:
            sock.connect(address.sockaddr)
        except OSError as exc:
            raise SockspecError(f"connect to {address} failed: {describe_os_error(exc)}") \
                from None
        sent = _send_until_server_stops_reading(sock, deadline)
        sock.shutdown(socket.SHUT_WR)
        wait_until_fin_acked(sock, deadline)
        owed = _owed_now(sock, sent)
        if owed.owed <= 0 or not owed.server_blocked:
            raise SockspecError(f"could not leave while an echo was owed: {owed.describe()}")
        return owed
    finally:
        abort(sock)


def _send_until_server_stops_reading(sock: socket.socket, deadline: float) -> int:
    """Send a chunk at a time until the server leaves our bytes unread: its echo is blocked.

    Each chunk must leave our socket (nothing queued on our side) before the
    next, so when the server stops reading our FIN can still reach it: its
    receive window is far larger than one chunk.
    """
    sent = 0
    while sent < TCP_MAX_BYTES and time.monotonic() < deadline:
        try:
            sent += send_all(sock, CHUNK)
        except SockspecError as exc:
            raise SockspecError(f"after {sent} bytes: {exc}") from None
        # A slow server is waited for; only a blocked one ends the wait early.
        wait_for(lambda: unsent_on(sock) == 0 or peer_socket(sock).send_blocked,
                 deadline - time.monotonic())
        peer = peer_socket(sock)
        if peer.unread and peer.send_blocked and _stays_blocked(sock):
            # Our last bytes may wait for its delayed ACK (at most 200 ms, TCP_DELACK_MAX).
            if not wait_for(lambda: unsent_on(sock) == 0, DELAYED_ACK_S):
                raise SockspecError(f"the server's receive window closed after {sent} bytes, "
                                    "with our FIN still behind them")
            return sent
    raise SockspecError(f"the server kept reading ({sent} bytes) without its echo stalling")


def _stays_blocked(sock: socket.socket) -> bool:
    """Still blocked once our delayed ACK is out: an ACK that frees room in its send
    queue can grow its send buffer (tcp_new_space), which would unblock it; with our
    receive buffer full no data, so no further ACK, can come."""
    echoed = queued_on(sock)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)  # sends a pending ACK now
    time.sleep(QUIET_S / 10)
    return peer_socket(sock).send_blocked and queued_on(sock) == echoed


def wait_until_fin_acked(sock: socket.socket, deadline: float) -> None:
    """Our FIN acknowledged (FIN_WAIT2): the server is in CLOSE_WAIT. We read nothing."""
    if not wait_for(lambda: tcp_state(sock) != TCP_FIN_WAIT1, deadline - time.monotonic()):
        raise SockspecError("our FIN was not acknowledged in time")
    if (state := tcp_state(sock)) != TCP_FIN_WAIT2:
        raise SockspecError(f"the server closed before our reset (TCP state {state})")


def _owed_now(sock: socket.socket, sent: int) -> Owed:
    """What the server still has to write. Nothing moves any more: we read nothing, so
    its blocked send() cannot go on, and our FIN is in."""
    peer = peer_socket(sock)
    echoed = queued_on(sock)
    return Owed(sent, echoed, sent - echoed - peer.unacked, peer.send_blocked)
