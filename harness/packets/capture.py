"""Capture one server's TCP packets on an interface, and save them as a pcap file.

No libpcap and no tcpdump: an AF_PACKET socket (needs CAP_NET_RAW) with a
classic BPF program, written here by hand, that keeps only TCP to or from
one port and cuts each packet to its headers in the kernel. Compiling a
filter string would need libpcap (scapy's compile_filter loads it with
ctypes), which a fresh Debian does not have.

On the loopback interface every packet passes an AF_PACKET tap twice: once
leaving (PACKET_OUTGOING) and once arriving. The filter drops the leaving
copy, as tcpdump does on lo, so each packet is recorded once.

A reader thread drains the socket in batches (at most one wake-up per
BATCH_INTERVAL_S), so a capture running beside a latency scenario does not
wake the interpreter for every packet. Pcap files are written with scapy's
PcapWriter (Ethernet link type, nanosecond timestamps) and open in Wireshark.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sockspec.errors import SockspecError
from sockspec.packets.frames import Segment, parse_frame

T = TypeVar("T")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8        # cmsg with the packet's length before the filter cut it
PACKET_STATISTICS = 6     # (packets, drops) since the last read
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35       # cmsg SCM_TIMESTAMPNS: struct timespec, kernel receive time
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
DLT_EN10MB = 1

# Ethernet 14 + IPv6 40 + TCP with options 60: every header fits.
SNAPLEN = 128
# A loopback bulk transfer sends 64 KiB super-packets and the socket buffer is
# charged their full size, so it must be large for a capture to keep up.
RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024
BATCH_INTERVAL_S = 0.005
# Headers of this many packets at most (~25 MB); later ones are counted, not kept.
MAX_FRAMES = 150_000
STOP_JOIN_TIMEOUT_S = 5.0
ANCILLARY_BYTES = 256


class CaptureUnavailable(SockspecError):
    """This process cannot capture packets (no CAP_NET_RAW, no AF_PACKET)."""


@dataclass(frozen=True)
class CapturedFrame:
    time_ns: int          # kernel receive time, CLOCK_REALTIME
    data: bytes           # the first SNAPLEN bytes
    wire_length: int      # the packet's full length

    @property
    def time(self) -> float:
        return self.time_ns / 1e9


@dataclass
class CaptureResult:
    interface: str
    port: int
    frames: list[CapturedFrame]
    lost_packets: int     # dropped by the kernel: the socket buffer was full
    truncated: bool       # more than MAX_FRAMES arrived

    def segments(self) -> list[Segment]:
        found = (parse_frame(f.data, f.time) for f in self.frames)
        return [s for s in found if s is not None]


# -- the filter ---------------------------------------------------------------------

BPF_LD_W_ABS, BPF_LD_H_ABS, BPF_LD_B_ABS = 0x20, 0x28, 0x30
BPF_LD_H_IND = 0x48
BPF_LDX_B_MSH = 0xB1
BPF_JEQ_K, BPF_JSET_K = 0x15, 0x45
BPF_RET_K = 0x06
SKF_AD_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF


def port_filter(port: int, snaplen: int = SNAPLEN, skip_outgoing: bool = True, *,
                not_from_port: bool = False) -> list[tuple]:
    """A classic BPF program: TCP over IPv4/IPv6 with source or destination ``port``.

    Returns (code, jt, jf, k) instructions; accepted packets are cut to
    ``snaplen`` bytes. Equivalent to tcpdump's ``tcp port PORT``, plus
    ``not outbound`` when ``skip_outgoing`` (for lo); with ``not_from_port``,
    ``tcp and not src port PORT`` instead (what the wire lab's crafted host
    answers for: segments the server did not send from its listening port).
    Jumps are written as labels and resolved at the end: hand-counted offsets
    are error-prone.
    """
    program: list[tuple] = []
    labels: dict[str, int] = {}
    jumps: list[tuple[int, str | None, str | None]] = []

    def emit(code: int, k: int, true: str | None = None, false: str | None = None) -> None:
        jumps.append((len(program), true, false))
        program.append((code, 0, 0, k))

    if skip_outgoing:
        emit(BPF_LD_W_ABS, SKF_AD_PKTTYPE)        # A = skb->pkt_type
        emit(BPF_JEQ_K, PACKET_OUTGOING, "drop", None)
    emit(BPF_LD_H_ABS, 12)                        # A = ethertype
    emit(BPF_JEQ_K, 0x0800, None, "not_ipv4")
    emit(BPF_LD_B_ABS, 23)                        # IPv4 protocol
    emit(BPF_JEQ_K, 6, None, "drop")
    emit(BPF_LD_H_ABS, 20)                        # flags + fragment offset
    emit(BPF_JSET_K, 0x1FFF, "drop", None)        # a later fragment has no TCP header
    emit(BPF_LDX_B_MSH, 14)                       # X = 4 * IHL
    emit(BPF_LD_H_IND, 14)                        # TCP source port
    if not_from_port:
        emit(BPF_JEQ_K, port, "drop", "accept")
    else:
        emit(BPF_JEQ_K, port, "accept", None)
        emit(BPF_LD_H_IND, 16)                    # TCP destination port
        emit(BPF_JEQ_K, port, "accept", "drop")
    labels["not_ipv4"] = len(program)
    emit(BPF_JEQ_K, 0x86DD, None, "drop")
    emit(BPF_LD_B_ABS, 20)                        # IPv6 next header: TCP follows at once
    emit(BPF_JEQ_K, 6, None, "drop")
    emit(BPF_LD_H_ABS, 54)                        # TCP source port
    if not_from_port:
        emit(BPF_JEQ_K, port, "drop", "accept")
    else:
        emit(BPF_JEQ_K, port, "accept", None)
        emit(BPF_LD_H_ABS, 56)                    # TCP destination port
        emit(BPF_JEQ_K, port, "accept", "drop")
    labels["accept"] = len(program)
    emit(BPF_RET_K, snaplen)
    labels["drop"] = len(program)
    emit(BPF_RET_K, 0)
    for index, true, false in jumps:
        code, _, _, k = program[index]
        jt = labels[true] - index - 1 if true else 0
        jf = labels[false] - index - 1 if false else 0
        program[index] = (code, jt, jf, k)
    return program


def attach_filter(sock: socket.socket, program: list[tuple]) -> None:
    instructions = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(instructions)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# -- the socket ----------------------------------------------------------------------


def open_packet_socket(interface: str, port: int, skip_outgoing: bool) -> socket.socket:
    """An AF_PACKET socket on ``interface`` that sees only TCP port ``port``."""
    try:
        # Protocol 0: the socket receives nothing until bind() names a protocol, so no
        # packet can be queued before the filter is attached.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise CaptureUnavailable("capturing packets needs CAP_NET_RAW (run as root, or "
                                 "setcap cap_net_raw+ep on the Python interpreter)") from None
    except (OSError, AttributeError) as exc:
        raise CaptureUnavailable(f"no AF_PACKET sockets here: {exc}") from None
    try:
        attach_filter(sock, port_filter(port, SNAPLEN, skip_outgoing))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
        except PermissionError:  # CAP_NET_RAW without CAP_NET_ADMIN: capped by rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.bind((interface, ETH_P_ALL))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise CaptureUnavailable(f"cannot capture on {interface}: {exc.strerror or exc}") from None
    return sock


def capture_unavailable_reason(interface: str = "lo") -> str | None:
    """Why this process cannot capture on ``interface``, or None when it can."""
    try:
        open_packet_socket(interface, 9, skip_outgoing=True).close()
    except CaptureUnavailable as exc:
        return str(exc)
    return None


class PacketCapture:
    """Records the TCP packets of one port on one interface, from start() to stop().

    ``run_in``, when given, runs a function in another network namespace and
    returns its result; the packet socket is opened there (a socket stays in the
    namespace it was created in, whichever thread later reads it).
    """

    def __init__(self, interface: str, port: int, *, skip_outgoing: bool | None = None,
                 run_in: Callable[[Callable[[], socket.socket]], socket.socket] | None = None):
        self.interface = interface
        self.port = port
        self._skip_outgoing = interface == "lo" if skip_outgoing is None else skip_outgoing
        self._run_in = run_in
        self._frames: list[CapturedFrame] = []
        self._lock = threading.Lock()
        self._truncated = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake_read, self._wake_write = -1, -1

    def start(self) -> PacketCapture:
        """Open the socket and start reading; raise CaptureUnavailable."""
        def opener() -> socket.socket:
            return open_packet_socket(self.interface, self.port, self._skip_outgoing)

        self._sock = self._run_in(opener) if self._run_in else opener()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"capture-{self.interface}-{self.port}")
        self._thread.start()
        return self

    def snapshot_matching(self, wanted: Callable[[bytes], bool] | None = None) -> list[Segment]:
        """Segments recorded so far whose frame ``wanted`` accepts (the capture keeps running).

        A cheap byte-level test first (e.g. on the TCP flags) keeps this fast
        for a capture holding a bulk transfer.
        """
        with self._lock:
            frames = list(self._frames)
        return [s for f in frames if (wanted is None or wanted(f.data))
                and (s := parse_frame(f.data, f.time)) is not None]

    def stop(self) -> CaptureResult:
        """Stop reading, take what the socket still holds, close it."""
        if self._thread is not None:
            os.write(self._wake_write, b"x")
            self._thread.join(STOP_JOIN_TIMEOUT_S)
        lost = 0
        if self._sock is not None:
            try:
                _, drops = struct.unpack("II", self._sock.getsockopt(
                    SOL_PACKET, PACKET_STATISTICS, 8))
                lost = drops
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1
        with self._lock:
            frames = self._frames
            self._frames = []
        return CaptureResult(self.interface, self.port, frames, lost, self._truncated)

    def __enter__(self) -> PacketCapture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._sock is not None:
            self.stop()

    def _read_loop(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while True:
            readable, _, _ = select.select([sock, self._wake_read], [], [])
            stopping = self._wake_read in readable
            self._drain(sock)
            if stopping:
                return
            # Let packets gather: one wake-up per batch, not per packet.
            if select.select([self._wake_read], [], [], BATCH_INTERVAL_S)[0]:
                self._drain(sock)
                return

    def _drain(self, sock: socket.socket) -> None:
        batch = []
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(SNAPLEN, ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            time_ns, wire_length = 0, len(data)
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    time_ns = seconds * 1_000_000_000 + nanoseconds
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    wire_length = struct.unpack_from("I", value, 4)[0]  # tp_len
            batch.append(CapturedFrame(time_ns, data, wire_length))
        if not batch:
            return
        with self._lock:
            room = MAX_FRAMES - len(self._frames)
            if len(batch) > room:
                self._truncated = True
            self._frames.extend(batch[:max(0, room)])


def write_pcap(path: str | Path, frames: list[CapturedFrame]) -> Path:
    """Write ``frames`` as a pcap file (Ethernet, nanosecond timestamps) with scapy."""
    from scapy.utils import PcapWriter  # imported here: scapy takes ~0.3 s to import

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = PcapWriter(str(target), linktype=DLT_EN10MB, nano=True, sync=False,
                        snaplen=SNAPLEN)
    try:
        writer.write_header(None)
        for frame in frames:
            seconds, nanoseconds = divmod(frame.time_ns, 1_000_000_000)
            writer.write_packet(frame.data, sec=seconds, usec=nanoseconds,
                                caplen=len(frame.data), wirelen=frame.wire_length)
    finally:
        writer.close()
    return target
