"""The packet summary reads each connection in causal order, not in timestamp order.

AF_PACKET on lo can stamp a segment milliseconds after the peer's ACK of it.
Frames are built with scapy as a capture holds them (Ethernet, IPv4), given
timestamps that run backwards, and parsed like a capture's.
"""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from sockspec.packets.capture import CapturedFrame, CaptureResult
from sockspec.packets.frames import ACK, FIN, PSH, SYN, Endpoint, Segment
from sockspec.packets.summary import causal_order, summarize
from sockspec.packets.summary_text import cite, describe, end_words, reply_words

CLIENT = Endpoint("127.0.0.1", 51000)
SERVER = Endpoint("127.0.0.1", 20076)
C, S = 3_000_000_000, 4_294_967_000   # ISNs; the server's wraps past zero
REQUEST = b"GET /index.html HTTP/1.1\r\n\r\n" + b"x" * 4   # 32 bytes
REPLY_BYTES = 179


def frame(ms: float, src: Endpoint, flags: int, seq: int, ack: int,
          payload: bytes = b"") -> CapturedFrame:
    dst = SERVER if src == CLIENT else CLIENT
    packet = (Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
              / IP(src=src.host, dst=dst.host)
              / TCP(sport=src.port, dport=dst.port, seq=seq % (1 << 32), ack=ack % (1 << 32),
                    flags=flags, window=65535))
    data = bytes(packet / payload) if payload else bytes(packet)
    return CapturedFrame(round(ms * 1_000_000), data, len(data))


def summary_of(frames: list[CapturedFrame]):
    result = CaptureResult("lo", SERVER.port, frames, lost_packets=0, truncated=False)
    return summarize(result.segments(), SERVER.port)


def handshake() -> list[CapturedFrame]:
    return [frame(0.000, CLIENT, SYN, C, 0),
            frame(0.010, SERVER, SYN | ACK, S, C + 1),
            frame(0.020, CLIENT, ACK, C + 1, S + 1)]


def request_with_fin_stamped_late() -> list[CapturedFrame]:
    """http_request_with_fin as it was captured: the request+FIN stamped 5 ms late."""
    after_request = C + 1 + len(REQUEST) + 1
    return handshake() + [
        frame(0.030, SERVER, ACK, S + 1, after_request),          # ACK of request and FIN
        frame(0.300, SERVER, PSH | ACK, S + 1, after_request, b"r" * REPLY_BYTES),
        frame(0.310, SERVER, FIN | ACK, S + 1 + REPLY_BYTES, after_request),
        frame(0.320, CLIENT, ACK, after_request, S + 1 + REPLY_BYTES + 1),
        frame(5.025, CLIENT, FIN | PSH | ACK, C + 1, S + 1, REQUEST),  # stamped late
    ]


def test_a_request_stamped_after_its_acknowledgement_still_gets_its_reply():
    summary = summary_of(request_with_fin_stamped_late())
    (connection,) = summary.connections
    assert connection.client_side.bytes_sent == len(REQUEST)
    assert connection.server_side.bytes_sent == REPLY_BYTES
    assert connection.client_side.fin_after_bytes == len(REQUEST)
    assert connection.server_side.fin_after_bytes == REPLY_BYTES
    words = end_words(connection)
    assert words.startswith(f"client FIN at +0.030 ms after {len(REQUEST)} bytes; "
                            f"server FIN at +0.310 ms after {REPLY_BYTES} bytes"), words
    assert reply_words(connection).startswith("1 answered requests"), reply_words(connection)
    assert connection.exchanges[0].first_reply_after == pytest.approx(0.000270)
    assert connection.server_side.retransmitted_segments == 0
    text = describe(summary)
    assert "no reply data" not in text
    assert "1 segments were stamped later than segments their numbers show came after them " \
        "(by up to 4.995 ms)" in text, text
    assert cite(summary, "ends") == f"packets: connection 1 of 1: {words}"
    # The order frames were read in does not matter either.
    shuffled = request_with_fin_stamped_late()
    random.Random(16).shuffle(shuffled)
    assert describe(summary_of(shuffled)) == text


def test_a_request_stamped_late_and_its_fin_on_time_is_counted_before_the_fin():
    """The request and the FIN in two segments; only the request is stamped late."""
    after_request = C + 1 + len(REQUEST)
    frames = handshake() + [
        frame(0.031, CLIENT, FIN | ACK, after_request, S + 1),
        frame(0.032, SERVER, ACK, S + 1, after_request + 1),
        frame(0.300, SERVER, PSH | ACK, S + 1, after_request + 1, b"r" * REPLY_BYTES),
        frame(0.310, SERVER, FIN | ACK, S + 1 + REPLY_BYTES, after_request + 1),
        frame(0.320, CLIENT, ACK, after_request + 1, S + 1 + REPLY_BYTES + 1),
        frame(3.000, CLIENT, PSH | ACK, C + 1, S + 1, REQUEST),   # stamped late
    ]
    (connection,) = summary_of(frames).connections
    assert connection.client_side.fin_after_bytes == len(REQUEST)
    assert connection.client_side.retransmitted_segments == 0
    assert end_words(connection).startswith(f"client FIN at +0.031 ms after {len(REQUEST)} "
                                            "bytes; server FIN"), end_words(connection)
    assert reply_words(connection).startswith("1 answered requests")


def test_the_side_that_closed_first_is_named_first_whatever_the_stamps():
    """The server sends its reply and FIN; the client's FIN, which acknowledges the server's
    FIN, is stamped before it."""
    frames = handshake() + [
        frame(0.030, CLIENT, PSH | ACK, C + 1, S + 1, REQUEST),
        frame(0.300, SERVER, FIN | PSH | ACK, S + 1, C + 1 + len(REQUEST), b"r" * REPLY_BYTES),
        frame(0.200, CLIENT, FIN | ACK, C + 1 + len(REQUEST), S + 1 + REPLY_BYTES + 1),
        frame(0.400, SERVER, ACK, S + 2 + REPLY_BYTES, C + 2 + len(REQUEST)),
    ]
    (connection,) = summary_of(frames).connections
    words = end_words(connection)
    assert words.startswith(f"server FIN at +0.200 ms after {REPLY_BYTES} bytes; client FIN "
                            f"at +0.200 ms after {len(REQUEST)} bytes"), words


def test_one_sides_segments_stamped_out_of_sequence_are_not_retransmissions():
    after_request = C + 1 + len(REQUEST)
    frames = handshake() + [
        frame(0.030, CLIENT, PSH | ACK, C + 1, S + 1, REQUEST),
        frame(0.300, SERVER, ACK, S + 1 + 1000, after_request, b"b" * 1000),   # second half
        frame(0.310, SERVER, ACK, S + 1, after_request, b"a" * 1000),          # first half
        frame(0.320, SERVER, FIN | ACK, S + 1 + 2000, after_request),
        frame(0.330, CLIENT, ACK, after_request, S + 2002),
    ]
    (connection,) = summary_of(frames).connections
    assert connection.server_side.bytes_sent == 2000
    assert connection.server_side.retransmitted_segments == 0
    assert connection.server_side.fin_after_bytes == 2000
    # A real retransmission (the RTO, long after) still counts as one.
    frames.insert(-2, frame(200.0, SERVER, ACK, S + 1, after_request, b"a" * 1000))
    (connection,) = summary_of(frames).connections
    assert connection.server_side.bytes_sent == 2000
    assert connection.server_side.retransmitted_segments == 1


def test_numbers_that_contradict_each_other_still_give_every_segment_once():
    """A cycle (two segments each acknowledging the other's later data) is broken by time."""
    segments = [
        Segment(0.1, CLIENT, SERVER, ACK, 100, 600, 65535, 100),
        Segment(0.2, SERVER, CLIENT, ACK, 500, 200, 65535, 100),
    ]
    ordered, restamped, _ = causal_order(segments)
    assert [s.src for s in ordered] == [CLIENT, SERVER] and restamped == 0
