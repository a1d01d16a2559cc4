"""A user-space TCP client that sends exactly the segments a scenario asks for.

WireFlow is the state of one crafted connection and is pure: it builds the
next segment to send (sequence and acknowledgment numbers) and takes in the
server's segments (reassembling its byte stream, noting FIN and RST, and
saying what to acknowledge). WireClient is the thin I/O part: one AF_PACKET
socket on the client end of a sockspec.packets.lab.WireLab, frames built with
scapy, any number of flows told apart by their client port.

Deliberately small: no window scaling, SACK or timestamps are offered in the
SYN, so the server's window field is in bytes; the client does not retransmit
(the veth inside the namespace does not lose packets) but reports whether the
server acknowledged what was sent.
"""

from __future__ import annotations

import secrets
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sockspec.packets.capture import SOL_PACKET, attach_filter, port_filter
from sockspec.packets.frames import ACK, FIN, PSH, RST, SYN, Segment, parse_frame, tcp_payload
from sockspec.packets.lab import WireLab

SEQ_SPACE = 1 << 32
WINDOW_BYTES = 65535              # the largest window without the window-scale option
VETH_MSS = 1460                   # veth MTU 1500 minus IPv4 and TCP headers
VETH_MSS_IPV6 = 1440              # ... minus the 40-byte IPv6 header
# The server's segments may be GSO super-packets of up to 64 KiB on a veth.
FRAME_BUFFER_BYTES = 256 * 1024
PACKET_IGNORE_OUTGOING = 23       # SOL_PACKET option: do not hear our own frames
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class OutSegment:
    """A segment to send: flags, numbers, window and payload (addresses added by the client)."""

    flags: int
    seq: int
    ack: int
    window: int
    payload: bytes = b""
    mss: int | None = None        # the MSS option, on a SYN


@dataclass
class WireFlow:
    """One crafted connection, from the client's side. Pure state, no I/O."""

    client_port: int
    iss: int = field(default_factory=lambda: secrets.randbits(32))
    window: int = WINDOW_BYTES
    snd_nxt: int = 0
    snd_una: int = 0
    rcv_nxt: int | None = None        # None until the SYN-ACK
    received: bytearray = field(default_factory=bytearray)
    server_fin: bool = False
    server_rst: bool = False
    synack_count: int = 0
    # A slow reader: once this many bytes have arrived, ACKs advertise a zero window.
    close_window_at: int | None = None
    events: list[tuple[float, str]] = field(default_factory=list)   # (time, what) for evidence

    def __post_init__(self) -> None:
        self.snd_nxt = self.snd_una = self.iss

    @property
    def established(self) -> bool:
        return self.rcv_nxt is not None

    @property
    def unacknowledged(self) -> int:
        """Sequence space sent that the server has not acknowledged yet."""
        return (self.snd_nxt - self.snd_una) % SEQ_SPACE

    def syn(self, mss: int = VETH_MSS) -> OutSegment:
        self.snd_nxt = (self.iss + 1) % SEQ_SPACE
        return OutSegment(SYN, self.iss, 0, self.window, mss=mss)

    def data(self, payload: bytes, fin: bool = False, push: bool = True) -> OutSegment:
        """The next data segment (with FIN when ``fin``); the sequence advances past it."""
        assert self.rcv_nxt is not None, "data before the handshake"
        flags = ACK | (PSH if push and payload else 0) | (FIN if fin else 0)
        segment = OutSegment(flags, self.snd_nxt, self.rcv_nxt, self.window, payload)
        self.snd_nxt = (self.snd_nxt + len(payload) + (1 if fin else 0)) % SEQ_SPACE
        return segment

    def acknowledgment(self) -> OutSegment:
        assert self.rcv_nxt is not None
        return OutSegment(ACK, self.snd_nxt, self.rcv_nxt, self.window)

    def reset(self) -> OutSegment:
        """RST with the next sequence number: the server accepts it at once (RFC 5961 3.2)."""
        return OutSegment(RST | ACK, self.snd_nxt, self.rcv_nxt or 0, 0)

    def receive(self, segment: Segment, payload: bytes, now: float) -> OutSegment | None:
        """Take in one of the server's segments; return the ACK it calls for, if any."""
        if segment.has(RST):
            self.server_rst = True
            self.events.append((now, f"server RST after {len(self.received)} bytes"))
            return None
        if segment.has(SYN):
            if not segment.has(ACK) or segment.ack != (self.iss + 1) % SEQ_SPACE:
                return None
            self.synack_count += 1
            self.rcv_nxt = (segment.seq + 1) % SEQ_SPACE
            self.snd_una = segment.ack
            return self.acknowledgment()
        if self.rcv_nxt is None:
            return None
        if segment.has(ACK) and (segment.ack - self.snd_una) % SEQ_SPACE <= self.unacknowledged:
            self.snd_una = segment.ack
        if segment.seq != self.rcv_nxt:
            # Out of order or a retransmission: repeat what we expect (a duplicate ACK).
            return self.acknowledgment() if payload or segment.has(FIN) else None
        self.received += payload
        self.rcv_nxt = (self.rcv_nxt + len(payload)) % SEQ_SPACE
        if self.close_window_at is not None and len(self.received) >= self.close_window_at:
            self.window = 0
        if segment.has(FIN) and not self.server_fin:
            self.server_fin = True
            self.rcv_nxt = (self.rcv_nxt + 1) % SEQ_SPACE
            self.events.append((now, f"server FIN after {len(self.received)} bytes"))
        return self.acknowledgment() if payload or segment.has(FIN) else None


class WireClient:
    """Sends crafted frames from the lab's phantom address and dispatches the answers."""

    def __init__(self, lab: WireLab, server_port: int, auto_ack: bool = True) -> None:
        """``auto_ack``: acknowledge every SYN-ACK and in-order segment at once."""
        self.lab = lab
        self.server_port = server_port
        self.auto_ack = auto_ack
        self.flows: dict[int, WireFlow] = {}
        # scapy takes 0.3 s (more when cold) to import: pay it here, not in the first
        # frame, where it would delay the scenario's first segment.
        import scapy.layers.inet  # noqa: F401
        import scapy.layers.l2  # noqa: F401

        self._sock = lab.run_in(self._open_socket)

    def _open_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            attach_filter(sock, port_filter(self.server_port, FRAME_BUFFER_BYTES,
                                            skip_outgoing=True))
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.bind((self.lab.client_interface, 0x0003))
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def flow(self, client_port: int | None = None) -> WireFlow:
        port = client_port or 40000 + secrets.randbelow(20000)
        while port in self.flows:
            port += 1
        self.flows[port] = WireFlow(port)
        return self.flows[port]

    def send(self, flow: WireFlow, segment: OutSegment) -> None:
        self._sock.send(self._frame(flow, segment))

    def _frame(self, flow: WireFlow, segment: OutSegment) -> bytes:
        from scapy.layers.inet import IP, TCP  # scapy loads in ~0.3 s: only when used
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether

        options = [("MSS", segment.mss)] if segment.mss else []
        network = IPv6 if self.lab.ipv6 else IP
        packet = (Ether(src=self.lab.client_mac, dst=self.lab.server_mac)
                  / network(src=self.lab.phantom, dst=self.lab.server_host)
                  / TCP(sport=flow.client_port, dport=self.server_port, seq=segment.seq,
                        ack=segment.ack, flags=segment.flags, window=segment.window,
                        options=options))
        if segment.payload:
            packet = packet / segment.payload
        return bytes(packet)

    def connect(self, flow: WireFlow, timeout: float) -> bool:
        """SYN, wait for the SYN-ACK, ACK it. False when no SYN-ACK came in time."""
        self.send(flow, flow.syn(VETH_MSS_IPV6 if self.lab.ipv6 else VETH_MSS))
        return self.pump(timeout, lambda: flow.established or flow.server_rst)

    def pump(self, timeout: float, until: Callable[[], bool]) -> bool:
        """Read the server's segments (ACKing them) until ``until()`` or the timeout."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not select.select([self._sock], [], [], remaining)[0]:
                continue
            self._read_available()
        return True

    def _read_available(self) -> None:
        while True:
            try:
                frame = self._sock.recv(FRAME_BUFFER_BYTES, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            segment = parse_frame(frame, time.monotonic())
            if segment is None or segment.src.port != self.server_port:
                continue
            flow = self.flows.get(segment.dst.port)
            if flow is None:
                continue
            answer = flow.receive(segment, tcp_payload(frame), segment.time)
            if answer is not None and self.auto_ack:
                self.send(flow, answer)

    def drain(self, flow: WireFlow, timeout: float, limit: int) -> bool:
        """Read until the server ends the stream (FIN or RST) or ``limit`` bytes arrived."""
        return self.pump(timeout, lambda: flow.server_fin or flow.server_rst
                         or len(flow.received) >= limit)
