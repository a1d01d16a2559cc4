"""A user-space TCP client that sends exactly the segments a scenario asks for.

WireFlow is the state of one crafted connection and is pure: it builds the
next segment to send (sequence and acknowledgment numbers) and takes in the
server's segments (reassembling its byte stream, noting FIN and RST, and
saying what to acknowledge). WireClient is the thin I/O part: one AF_PACKET
socket on the client end of a sockspec.packets.lab.WireLab, frames built with
scapy, any number of flows told apart by their client port.

The crafted address behaves like a host, not a black hole: a segment for a
connection it does not have (the server connecting back to it, as tcpserver's
RFC 1413 ident lookup to port 113 does, or a segment for a client port it has
no flow on) is answered with RST by the rules of RFC 9293 3.10.7.1 (reset_for),
so such a connect fails at once with ECONNREFUSED, as against a Linux host with
the port closed. A second AF_PACKET socket and a thread answer those at any
moment, also while the scenario is not reading. Every wait for the server is
recorded (WireClient.waits) so evidence can say how long the harness waited.

Deliberately small: no window scaling, SACK or timestamps are offered in the
SYN, so the server's window field is in bytes; the client does not retransmit
(the veth inside the namespace does not lose packets) but reports whether the
server acknowledged what was sent.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import select
import socket
import threading
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
HOST_FRAME_BYTES = 256            # headers are all the crafted host needs to answer
HOST_STOP_TIMEOUT_S = 5.0
MAX_HOST_ANSWERS_KEPT = 100


def reset_for(segment: Segment) -> OutSegment | None:
    """A host's answer to a segment for a connection it does not have (RFC 9293 3.10.7.1).

    Nothing to an RST; to a segment with ACK, an RST whose sequence number is
    that ACK; to anything else (a SYN to a closed port), RST|ACK with sequence 0
    acknowledging the segment (SEG.SEQ + SEG.LEN, SYN and FIN included), as
    Linux answers.
    """
    if segment.has(RST):
        return None
    if segment.has(ACK):
        return OutSegment(RST, segment.ack, 0, 0)
    return OutSegment(RST | ACK, 0, (segment.seq + segment.sequence_space) % SEQ_SPACE, 0)


@dataclass(frozen=True)
class Wait:
    """One wait of the harness for the server: what for, how long, whether it came."""

    what: str
    waited: float
    timeout: float
    met: bool


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
        self.waits: list[Wait] = []
        # (time.monotonic(), what): segments for connections the host does not have, and
        # the RST each got; the first MAX_HOST_ANSWERS_KEPT, and how many in all.
        self.host_answers: list[tuple[float, str]] = []
        self.host_answer_count = 0
        self._host_lock = threading.Lock()     # the host thread and pump() both answer
        self._phantom = ipaddress.ip_address(lab.phantom)
        # scapy takes 0.3 s (more when cold) to import: pay it here, not in the first
        # frame, where it would delay the scenario's first segment.
        import scapy.layers.inet  # noqa: F401
        import scapy.layers.l2  # noqa: F401

        self._sock = lab.run_in(self._open_socket)
        self._host_sock: socket.socket | None = None
        self._host_thread: threading.Thread | None = None
        self._wake_read = self._wake_write = -1
        try:
            self._host_sock = lab.run_in(lambda: self._open_socket(host=True))
            self._wake_read, self._wake_write = os.pipe()
            self._host_thread = threading.Thread(target=self._host_loop, daemon=True,
                                                 name=f"wire-host-{lab.phantom}")
            self._host_thread.start()
        except BaseException:
            self.close()
            raise

    def _open_socket(self, host: bool = False) -> socket.socket:
        """The flows' socket (the server's port), or with ``host`` the crafted host's (the rest)."""
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            attach_filter(sock, port_filter(self.server_port,
                                            HOST_FRAME_BYTES if host else FRAME_BUFFER_BYTES,
                                            skip_outgoing=True, not_from_port=host))
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.bind((self.lab.client_interface, 0x0003))
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        if self._host_thread is not None:
            os.write(self._wake_write, b"x")
            self._host_thread.join(HOST_STOP_TIMEOUT_S)
            self._host_thread = None
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1
        if self._host_sock is not None:
            self._host_sock.close()
            self._host_sock = None
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
        self._sock.send(self._frame(flow.client_port, self.lab.server_host, self.server_port,
                                    segment))

    def _frame(self, own_port: int, host: str, port: int, segment: OutSegment) -> bytes:
        from scapy.layers.inet import IP, TCP  # scapy loads in ~0.3 s: only when used
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether

        options = [("MSS", segment.mss)] if segment.mss else []
        network = IPv6 if self.lab.ipv6 else IP
        packet = (Ether(src=self.lab.client_mac, dst=self.lab.server_mac)
                  / network(src=self.lab.phantom, dst=host)
                  / TCP(sport=own_port, dport=port, seq=segment.seq,
                        ack=segment.ack, flags=segment.flags, window=segment.window,
                        options=options))
        if segment.payload:
            packet = packet / segment.payload
        return bytes(packet)

    def connect(self, flow: WireFlow, timeout: float) -> bool:
        """SYN, wait for the SYN-ACK, ACK it. False when no SYN-ACK came in time."""
        self.send(flow, flow.syn(VETH_MSS_IPV6 if self.lab.ipv6 else VETH_MSS))
        return self.pump(timeout, lambda: flow.established or flow.server_rst,
                         waiting_for="the SYN-ACK to a SYN")

    def pump(self, timeout: float, until: Callable[[], bool],
             waiting_for: str | None = None) -> bool:
        """Read the server's segments (ACKing them) until ``until()`` or the timeout.

        ``waiting_for`` names what the harness waits for: the wait is recorded in
        ``waits`` (a pause that waits for nothing passes None).
        """
        began = time.monotonic()
        deadline = began + timeout
        met = True
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                met = False
                break
            if not select.select([self._sock], [], [], remaining)[0]:
                continue
            self._read_available()
        if waiting_for is not None:
            self.waits.append(Wait(waiting_for, time.monotonic() - began, timeout, met))
        return met

    def wait_words(self) -> str:
        """How long the harness waited for the server, per kind of wait."""
        kinds: dict[str, list[Wait]] = {}
        for wait in self.waits:
            kinds.setdefault(wait.what, []).append(wait)
        words = []
        for what, waits in kinds.items():
            missed = [w for w in waits if not w.met]
            if len(waits) == 1:
                (wait,) = waits
                text = f"waited {wait.waited:.3f} s for {what}"
                if not wait.met:
                    text += f" (it did not come within {wait.timeout:g} s)"
            else:
                text = (f"waited {len(waits)} times for {what}, longest "
                        f"{max(w.waited for w in waits):.3f} s")
                if missed:
                    text += f", {len(missed)} of them in vain ({missed[0].timeout:g} s each)"
            words.append(text)
        return "; ".join(words) or "no wait for the server"

    def host_words(self) -> str:
        """What the crafted host answered for connections it did not have ('' if nothing)."""
        if not self.host_answer_count:
            return ""
        shown = "; ".join(what for _, what in self.host_answers[:3])
        more = self.host_answer_count - min(3, len(self.host_answers))
        return (f"the crafted host {self.lab.phantom} answered {self.host_answer_count} "
                f"segment{'s' if self.host_answer_count != 1 else ''} for connections it did "
                f"not have with RST, as a host with the port closed does: {shown}"
                + (f"; {more} more" if more > 0 else ""))

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
            if flow is None:   # from the server's port, but to a port with no flow
                self._answer_unknown(self._sock, segment)
                continue
            answer = flow.receive(segment, tcp_payload(frame), segment.time)
            if answer is not None and self.auto_ack:
                self.send(flow, answer)

    def _answer_unknown(self, sock: socket.socket, segment: Segment) -> None:
        """Reset a segment for a connection the crafted host does not have."""
        try:
            if ipaddress.ip_address(segment.dst.host) != self._phantom:
                return   # not for the crafted host: no host answers for another's address
        except ValueError:
            return
        answer = reset_for(segment)
        if answer is None:
            return
        frame = self._frame(segment.dst.port, segment.src.host, segment.src.port, answer)
        flags = "RST|ACK" if answer.flags & ACK else "RST"
        with self._host_lock:   # noted first: whoever sees the RST's effect finds it noted
            self.host_answer_count += 1
            if len(self.host_answers) < MAX_HOST_ANSWERS_KEPT:
                self.host_answers.append((time.monotonic(), (
                    f"{segment.flag_text} from {segment.src} to port {segment.dst.port} "
                    f"got {flags}")))
        sock.send(frame)

    def _host_loop(self) -> None:
        """The crafted host's thread: answer segments not from the server's port."""
        sock = self._host_sock
        assert sock is not None
        while True:
            readable = select.select([sock, self._wake_read], [], [])[0]
            if self._wake_read in readable:
                return
            while True:
                try:
                    frame = sock.recv(HOST_FRAME_BYTES, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    return
                segment = parse_frame(frame, time.monotonic())
                if segment is not None:
                    try:
                        self._answer_unknown(sock, segment)
                    except OSError:
                        pass   # the veth went away: the lab is being deleted

    def drain(self, flow: WireFlow, timeout: float, limit: int) -> bool:
        """Read until the server ends the stream (FIN or RST) or ``limit`` bytes arrived."""
        return self.pump(timeout, lambda: flow.server_fin or flow.server_rst
                         or len(flow.received) >= limit,
                         waiting_for=f"the server to end the stream or send {limit} bytes")
