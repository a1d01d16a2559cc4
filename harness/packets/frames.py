"""One captured frame -> one TCP Segment record. Pure: bytes in, dataclass out.

Frames are Ethernet (DLT_EN10MB): Linux gives the loopback interface a
14-byte Ethernet header of zero addresses, and a veth is Ethernet. Only the
headers are needed, so frames may be cut short (the capture keeps the first
SNAPLEN bytes); the payload length comes from the IP header, not the frame.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_HEADER_BYTES = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPV6_HEADER_BYTES = 40

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."))


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Segment:
    """The TCP facts of one packet; ``time`` in seconds (any fixed origin)."""

    time: float
    src: Endpoint
    dst: Endpoint
    flags: int
    seq: int
    ack: int
    window: int          # the raw 16-bit field: 0 is a zero window whatever the scale
    payload: int         # payload bytes, from the IP length (frames may be truncated)

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @property
    def flag_text(self) -> str:
        """tcpdump style: S, F, R, P, then . for ACK."""
        return "".join(letter for bit, letter in FLAG_LETTERS if self.flags & bit) or "none"

    @property
    def sequence_space(self) -> int:
        """Sequence numbers this segment uses: payload, plus one each for SYN and FIN."""
        return self.payload + self.has(SYN) + self.has(FIN)


def parse_frame(frame: bytes, time: float) -> Segment | None:
    """The TCP segment in an Ethernet frame, or None (not TCP over IPv4/IPv6, or cut short)."""
    if len(frame) < ETH_HEADER_BYTES:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == ETHERTYPE_IPV4:
        return _parse_ipv4(frame, ETH_HEADER_BYTES, time)
    if ethertype == ETHERTYPE_IPV6:
        return _parse_ipv6(frame, ETH_HEADER_BYTES, time)
    return None


def _parse_ipv4(frame: bytes, offset: int, time: float) -> Segment | None:
    if len(frame) < offset + 20:
        return None
    version_ihl, total_length, fragment, protocol = (
        frame[offset], *struct.unpack_from("!H2xH", frame, offset + 2), frame[offset + 9])
    header = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or protocol != IPPROTO_TCP or fragment & 0x1FFF:
        return None
    src = str(ipaddress.IPv4Address(frame[offset + 12:offset + 16]))
    dst = str(ipaddress.IPv4Address(frame[offset + 16:offset + 20]))
    return _parse_tcp(frame, offset + header, total_length - header, src, dst, time)


def _parse_ipv6(frame: bytes, offset: int, time: float) -> Segment | None:
    # Loopback and veth TCP carries no extension headers, so TCP must follow at once.
    if len(frame) < offset + IPV6_HEADER_BYTES or frame[offset + 6] != IPPROTO_TCP:
        return None
    (payload_length,) = struct.unpack_from("!H", frame, offset + 4)
    src = str(ipaddress.IPv6Address(frame[offset + 8:offset + 24]))
    dst = str(ipaddress.IPv6Address(frame[offset + 24:offset + 40]))
    return _parse_tcp(frame, offset + IPV6_HEADER_BYTES, payload_length, src, dst, time)


def _parse_tcp(frame: bytes, offset: int, tcp_length: int, src: str, dst: str,
               time: float) -> Segment | None:
    if len(frame) < offset + 20:
        return None
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", frame, offset)
    header = (offset_flags >> 12) * 4
    return Segment(time=time, src=Endpoint(src, sport), dst=Endpoint(dst, dport),
                   flags=offset_flags & 0x3F, seq=seq, ack=ack, window=window,
                   payload=max(0, tcp_length - header))


def tcp_flags(frame: bytes) -> int | None:
    """Just the TCP flags of a frame, cheaply (no addresses); None if not TCP."""
    if len(frame) < ETH_HEADER_BYTES + 20:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETHERTYPE_IPV4 and frame[23] == IPPROTO_TCP:
        offset = ETH_HEADER_BYTES + (frame[14] & 0x0F) * 4 + 13
    elif ethertype == ETHERTYPE_IPV6 and frame[20] == IPPROTO_TCP:
        offset = ETH_HEADER_BYTES + IPV6_HEADER_BYTES + 13
    else:
        return None
    return frame[offset] & 0x3F if len(frame) > offset else None


def tcp_payload(frame: bytes) -> bytes:
    """The TCP payload bytes of a whole (untruncated) Ethernet frame; b"" if none."""
    if len(frame) < ETH_HEADER_BYTES + 20:
        return b""
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETHERTYPE_IPV4:
        ip_start = ETH_HEADER_BYTES
        (total_length,) = struct.unpack_from("!H", frame, ip_start + 2)
        tcp_start = ip_start + (frame[ip_start] & 0x0F) * 4
        ip_end = ip_start + total_length
    elif ethertype == ETHERTYPE_IPV6:
        (payload_length,) = struct.unpack_from("!H", frame, ETH_HEADER_BYTES + 4)
        tcp_start = ETH_HEADER_BYTES + IPV6_HEADER_BYTES
        ip_end = tcp_start + payload_length
    else:
        return b""
    if len(frame) < tcp_start + 13:
        return b""
    return frame[tcp_start + (frame[tcp_start + 12] >> 4) * 4:ip_end]
