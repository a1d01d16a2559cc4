"""The server's end of a connection as the kernel sees it, and waits built on it.

A client can ask its own kernel how far the server has got: sock_diag looks up
the server's socket by the connection's exact 4-tuple (on loopback, or from a
thread inside a wire lab's namespace) and reports what it has not read, what it
has written, and whether its send() would block; ioctls report what waits on
our own socket. ``read_everything`` and ``ReadAlone`` use them so a scenario
that sends a message in pieces knows the server's recv() took each piece alone,
instead of hoping a pause was long enough.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sockspec.errors import SockspecError

# include/net/tcp_states.h
TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2 = 1, 4, 5
POLL_S = 0.0005


@dataclass(frozen=True)
class PeerSocket:
    """The server's end of our connection, as the kernel reports it (sock_diag)."""

    state: int
    unread: int          # bytes it has not read (rcv_nxt - copied_seq)
    unacked: int         # bytes it has written that we have not acknowledged
    send_queued: int     # sk_wmem_queued
    send_buffer: int     # sk_sndbuf
    written: int | None = None  # bytes it has written in all (tcpi_bytes_acked + unacked)
    received: int | None = None  # bytes it has received in order in all (tcpi_bytes_received)

    @property
    def send_blocked(self) -> bool:
        """A send() of it blocks now (sk_stream_memory_free is false)."""
        return self.send_queued >= self.send_buffer

    @property
    def read(self) -> int | None:
        """Bytes its application has read in all (copied_seq), None if not reported."""
        return None if self.received is None else self.received - self.unread


# linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
INET_DIAG_INFO = 2
INET_DIAG_SKMEMINFO = 7
# struct tcp_info (include/uapi/linux/tcp.h): offsets of the fields read here.
TCPI_BYTES_ACKED_OFFSET = 120
TCPI_BYTES_RECEIVED_OFFSET = 128
TCPI_NOTSENT_BYTES_OFFSET = 144       # u32
TCPI_BYTES_SENT_OFFSET = 200          # u64, then u64 tcpi_bytes_retrans
TCPI_BYTES_RETRANS_OFFSET = 208
SK_MEMINFO_SNDBUF, SK_MEMINFO_WMEM_QUEUED = 3, 5
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
INET_DIAG_MSG_BYTES = 72


def _sock_diag(request: bytes, missing: str) -> bytes:
    """One SOCK_DIAG_BY_FAMILY request for one socket; the reply's body (after the
    netlink header). Raises SockspecError, ``missing`` and the errno, when the kernel
    has no such socket."""
    message = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST,
                          1, 0) + request
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.sendto(message, (0, 0))
        reply = netlink.recv(65536)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", reply, 16)[0]
        raise SockspecError(f"{missing} ({errno.errorcode.get(code, code)})")
    return reply[16:length]


def _attributes(body: bytes, offset: int) -> Iterator[tuple[int, int, int]]:
    """The netlink attributes of ``body`` from ``offset``: (type, payload offset,
    payload size)."""
    while offset + 4 <= len(body):
        size, kind = struct.unpack_from("=HH", body, offset)
        if size < 4:
            return
        yield kind, offset + 4, size - 4
        offset += (size + 3) & ~3


def peer_socket(sock: socket.socket) -> PeerSocket:
    """One sock_diag lookup of the server's end of ``sock`` by its exact 4-tuple.

    Cheap whatever the number of sockets on the host (reading /proc/net/tcp is not).
    """
    (our_host, our_port, *_), (its_host, its_port, *_) = sock.getsockname(), sock.getpeername()
    return peer_socket_at(sock.family, (its_host, its_port), (our_host, our_port))


def peer_socket_at(family: int, its: tuple[str, int], ours: tuple[str, int]) -> PeerSocket:
    """The TCP socket at ``its`` (host, port) connected to ``ours``, in this thread's
    network namespace. Raises SockspecError when the kernel has no such socket with
    its memory reported (closed, or a time-wait socket)."""
    def raw(host: str) -> bytes:
        return socket.inet_pton(family, host).ljust(16, b"\0")

    sockid = (struct.pack(">HH16s16s", its[1], ours[1], raw(its[0]), raw(ours[0]))
              + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    extensions = 1 << (INET_DIAG_SKMEMINFO - 1) | 1 << (INET_DIAG_INFO - 1)
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP,
                          extensions, 0, 0xFFFFFFFF) + sockid
    body = _sock_diag(request, "the kernel has no socket of the server's for this connection")
    unread, unacked = struct.unpack_from("=II", body, 56)
    memory: tuple[int, ...] = ()
    written = received = None
    for kind, start, size in _attributes(body, INET_DIAG_MSG_BYTES):
        if kind == INET_DIAG_SKMEMINFO:
            memory = struct.unpack_from(f"={size // 4}I", body, start)
        elif kind == INET_DIAG_INFO and size >= TCPI_BYTES_RECEIVED_OFFSET + 8:
            acked, received = struct.unpack_from("=QQ", body, start + TCPI_BYTES_ACKED_OFFSET)
            written = acked + unacked
    if len(memory) <= SK_MEMINFO_WMEM_QUEUED:
        raise SockspecError("the kernel did not report the server's socket memory")
    return PeerSocket(body[1], unread, unacked, memory[SK_MEMINFO_WMEM_QUEUED],
                      memory[SK_MEMINFO_SNDBUF], written, received)


# linux/unix_diag.h
UDIAG_SHOW_PEER = 0x04
UNIX_DIAG_PEER = 2
UNIX_DIAG_MSG_BYTES = 16


def unix_peer_inode(sock: socket.socket) -> int:
    """The inode of the socket at the other end of our Unix stream ``sock``, from
    unix_diag; 0 once the kernel has released it (its last descriptor closed: the
    close() that, with unread input, resets us)."""
    inode = os.fstat(sock.fileno()).st_ino
    request = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, inode,
                          UDIAG_SHOW_PEER, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    body = _sock_diag(request, "unix_diag has no socket with our inode")
    for kind, start, size in _attributes(body, UNIX_DIAG_MSG_BYTES):
        if kind == UNIX_DIAG_PEER and size >= 4:
            return struct.unpack_from("=I", body, start)[0]
    return 0  # no peer attribute: not connected, or the peer is gone


def queued_on(sock: socket.socket) -> int:
    """Bytes waiting on our socket for us to read (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def unsent_on(sock: socket.socket) -> int:
    """TCP: bytes in our send queue not yet acknowledged. Unix stream: bytes we sent
    that the peer has not read yet (SIOCOUTQ counts the queued skbs' memory)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def written_on(sock: socket.socket) -> int | None:
    """TCP: data bytes we have written on ``sock`` in all, sent or not (write_seq less
    the SYN): tcpi_bytes_sent less tcpi_bytes_retrans, plus tcpi_notsent_bytes. None
    from a kernel too old to report them (before Linux 4.19)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCPI_BYTES_RETRANS_OFFSET + 8)
    if len(info) < TCPI_BYTES_RETRANS_OFFSET + 8:
        return None
    (notsent,) = struct.unpack_from("=I", info, TCPI_NOTSENT_BYTES_OFFSET)
    sent, retransmitted = struct.unpack_from("=QQ", info, TCPI_BYTES_SENT_OFFSET)
    return sent - retransmitted + notsent


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    give_up = time.monotonic() + max(0.0, seconds)
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(POLL_S)
    return True


def read_everything(sock: socket.socket) -> bool | None:
    """The server has read every byte we wrote on ``sock`` (TCP or Unix stream).

    TCP: its copied_seq has reached our write_seq. Unix: nothing we sent is still
    queued at it. None when its socket is gone (closed, reset): it will read
    nothing more.
    """
    if sock.family == socket.AF_UNIX:
        return unsent_on(sock) == 0
    return has_read(lambda: peer_socket(sock), written_on(sock))


def has_read(lookup: Callable[[], PeerSocket], written: int | None) -> bool | None:
    """The peer ``lookup()`` finds has read ``written`` bytes in all. None when the
    kernel no longer has its socket (closed, reset), or reports neither count: there
    is nothing to wait for."""
    try:
        read = lookup().read
    except (OSError, SockspecError):
        return None
    if read is None or written is None:
        return None
    return read >= written


@dataclass
class ReadAlone:
    """Before each further piece of a message, wait until the server has read all
    that was sent, so its recv() returns each piece alone whatever the scheduler
    does. A server that leaves a piece unread for ``limit_s``, or whose socket is
    gone, has stopped reading (one recv() per message, a full accept queue, a
    close): from then on no more waits.

    ``has_read`` says whether the server has read all sent so far (None: its
    socket is gone).
    """

    has_read: Callable[[], bool | None]
    limit_s: float
    # Between two looks; returning True ends the wait (the caller is being stopped).
    idle: Callable[[float], object] = time.sleep
    unit: str = "piece"                             # what is sent: "piece", "byte"
    pieces_waited: int = 0
    longest_s: float = 0.0
    stopped_at: int | None = None    # the piece the server left unread
    gone: bool = False

    def before_next(self, piece: int) -> None:
        """``piece`` (counted from 1) is the last one sent."""
        if self.stopped_at is not None:
            return
        began = time.monotonic()
        give_up = began + self.limit_s
        while not (read := self.has_read()):
            if read is None or time.monotonic() > give_up:
                self.stopped_at, self.gone = piece, read is None
                break
            if self.idle(POLL_S) is True:
                break
        self.longest_s = max(self.longest_s, time.monotonic() - began)
        self.pieces_waited += 1

    def words(self) -> str:
        """For the evidence: did the server read each piece before the next was sent."""
        if self.stopped_at is None:
            plural = "s" if self.pieces_waited != 1 else ""
            return (f"yes: before each of the {self.pieces_waited} further {self.unit}{plural}, "
                    f"it had read all sent (longest wait {self.longest_s:.3f} s)")
        why = ("the kernel no longer had its socket (closed or reset)" if self.gone else
               f"it left {self.unit} {self.stopped_at} unread for {self.limit_s:g} s")
        return f"no: {why}, so the rest went without waiting"
