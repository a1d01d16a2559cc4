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

import errno
import fcntl
import socket
import struct
import termios
import time
from dataclasses import dataclass

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
# include/net/tcp_states.h
TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2 = 1, 4, 5


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
        _wait_until_fin_acked(sock, deadline)
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
        _wait_for(lambda: _unsent_on(sock) == 0 or _peer_socket(sock).send_blocked,
                  deadline - time.monotonic())
        peer = _peer_socket(sock)
        if peer.unread and peer.send_blocked and _stays_blocked(sock):
            # Our last bytes may wait for its delayed ACK (at most 200 ms, TCP_DELACK_MAX).
            if not _wait_for(lambda: _unsent_on(sock) == 0, DELAYED_ACK_S):
                raise SockspecError(f"the server's receive window closed after {sent} bytes, "
                                    "with our FIN still behind them")
            return sent
    raise SockspecError(f"the server kept reading ({sent} bytes) without its echo stalling")


def _stays_blocked(sock: socket.socket) -> bool:
    """Still blocked once our delayed ACK is out: an ACK that frees room in its send
    queue can grow its send buffer (tcp_new_space), which would unblock it; with our
    receive buffer full no data, so no further ACK, can come."""
    echoed = _queued_on(sock)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)  # sends a pending ACK now
    time.sleep(QUIET_S / 10)
    return _peer_socket(sock).send_blocked and _queued_on(sock) == echoed


def _wait_until_fin_acked(sock: socket.socket, deadline: float) -> None:
    """Our FIN acknowledged (FIN_WAIT2): the server is in CLOSE_WAIT. We read nothing."""
    if not _wait_for(lambda: _tcp_state(sock) != TCP_FIN_WAIT1, deadline - time.monotonic()):
        raise SockspecError("our FIN was not acknowledged in time")
    if (state := _tcp_state(sock)) != TCP_FIN_WAIT2:
        raise SockspecError(f"the server closed before our reset (TCP state {state})")


def _owed_now(sock: socket.socket, sent: int) -> Owed:
    """What the server still has to write. Nothing moves any more: we read nothing, so
    its blocked send() cannot go on, and our FIN is in."""
    peer = _peer_socket(sock)
    echoed = _queued_on(sock)
    return Owed(sent, echoed, sent - echoed - peer.unacked, peer.send_blocked)


def _wait_for(condition, seconds: float) -> bool:
    give_up = time.monotonic() + max(0.0, seconds)
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.0005)
    return True


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _queued_on(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def _unsent_on(sock: socket.socket) -> int:
    """Bytes in our send queue not yet acknowledged (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


@dataclass(frozen=True)
class PeerSocket:
    """The server's end of our connection, as the kernel reports it (sock_diag)."""

    state: int
    unread: int          # bytes it has not read (rcv_nxt - copied_seq)
    unacked: int         # bytes it has written that we have not acknowledged
    send_queued: int     # sk_wmem_queued
    send_buffer: int     # sk_sndbuf
    written: int | None = None  # bytes it has written in all (tcpi_bytes_acked + unacked)

    @property
    def send_blocked(self) -> bool:
        """A send() of it blocks now (sk_stream_memory_free is false)."""
        return self.send_queued >= self.send_buffer


# linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
INET_DIAG_INFO = 2
INET_DIAG_SKMEMINFO = 7
# struct tcp_info (include/uapi/linux/tcp.h): offset of the u64 tcpi_bytes_acked.
TCPI_BYTES_ACKED_OFFSET = 120
SK_MEMINFO_SNDBUF, SK_MEMINFO_WMEM_QUEUED = 3, 5
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
INET_DIAG_MSG_BYTES = 72


def _peer_socket(sock: socket.socket) -> PeerSocket:
    """One sock_diag lookup of the server's end of ``sock`` by its exact 4-tuple.

    Cheap whatever the number of sockets on the host (reading /proc/net/tcp is not).
    """
    (our_host, our_port, *_), (its_host, its_port, *_) = sock.getsockname(), sock.getpeername()

    def raw(host: str) -> bytes:
        return socket.inet_pton(sock.family, host).ljust(16, b"\0")

    sockid = (struct.pack(">HH16s16s", its_port, our_port, raw(its_host), raw(our_host))
              + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    extensions = 1 << (INET_DIAG_SKMEMINFO - 1) | 1 << (INET_DIAG_INFO - 1)
    request = struct.pack("=BBBBI", sock.family, socket.IPPROTO_TCP,
                          extensions, 0, 0xFFFFFFFF) + sockid
    message = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST,
                          1, 0) + request
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.sendto(message, (0, 0))
        reply = netlink.recv(65536)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", reply, 16)[0]
        raise SockspecError(f"the kernel has no socket of the server's for this connection "
                            f"({errno.errorcode.get(code, code)})")
    body = reply[16:length]
    unread, unacked = struct.unpack_from("=II", body, 56)
    memory: tuple[int, ...] = ()
    written = None
    offset = INET_DIAG_MSG_BYTES
    while offset + 4 <= len(body):
        size, kind = struct.unpack_from("=HH", body, offset)
        if size < 4:
            break
        if kind == INET_DIAG_SKMEMINFO:
            memory = struct.unpack_from(f"={(size - 4) // 4}I", body, offset + 4)
        elif kind == INET_DIAG_INFO and size - 4 >= TCPI_BYTES_ACKED_OFFSET + 8:
            acked = struct.unpack_from("=Q", body, offset + 4 + TCPI_BYTES_ACKED_OFFSET)[0]
            written = acked + unacked
        offset += (size + 3) & ~3
    if len(memory) <= SK_MEMINFO_WMEM_QUEUED:
        raise SockspecError("the kernel did not report the server's socket memory")
    return PeerSocket(body[1], unread, unacked, memory[SK_MEMINFO_WMEM_QUEUED],
                      memory[SK_MEMINFO_SNDBUF], written)


