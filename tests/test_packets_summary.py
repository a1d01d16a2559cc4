"""Packet facts from synthetic segments: no sockets, no capture, no root."""

from __future__ import annotations

import pytest

from sockspec.packets.frames import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Endpoint,
    Segment,
    parse_frame,
    tcp_flags,
    tcp_payload,
)
from sockspec.packets.summary import EndTracker, summarize
from sockspec.packets.summary_text import MAX_CONNECTIONS_LISTED, cite, describe

SERVER = Endpoint("127.0.0.1", 5000)
CLIENT = Endpoint("127.0.0.1", 40000)
CLIENT_ISN, SERVER_ISN = 1000, 9000


def seg(t, src, dst, flags, seq, ack=0, payload=0, window=65535) -> Segment:
    return Segment(time=t, src=src, dst=dst, flags=flags, seq=seq % (1 << 32),
                   ack=ack % (1 << 32), window=window, payload=payload)


def handshake(t=0.0, client=CLIENT, client_isn=CLIENT_ISN, server_isn=SERVER_ISN):
    return [seg(t, client, SERVER, SYN, client_isn),
            seg(t + 0.0001, SERVER, client, SYN | ACK, server_isn, client_isn + 1),
            seg(t + 0.0002, client, SERVER, ACK, client_isn + 1, server_isn + 1)]


def client_data(t, offset, size, flags=PSH | ACK, client=CLIENT, isn=CLIENT_ISN):
    return seg(t, client, SERVER, flags, isn + 1 + offset, SERVER_ISN + 1, size)


def server_data(t, offset, size, flags=PSH | ACK, client=CLIENT, isn=SERVER_ISN):
    return seg(t, SERVER, client, flags, isn + 1 + offset, CLIENT_ISN + 1, size)


def test_fin_and_rst_are_attributed_to_the_side_that_sent_them():
    segments = handshake() + [
        client_data(0.001, 0, 100),
        client_data(0.002, 100, 0, FIN | ACK),
        server_data(0.003, 0, 50),
        seg(0.305, SERVER, CLIENT, RST | ACK, SERVER_ISN + 51, CLIENT_ISN + 102),
    ]
    summary = summarize(segments, server_port=SERVER.port)
    (connection,) = summary.connections
    assert connection.client_side.fin_at == pytest.approx(0.002)
    assert connection.client_side.fin_after_bytes == 100
    assert connection.server_side.rst_at == pytest.approx(0.305)
    assert connection.server_side.rst_after_bytes == 50
    assert connection.server_side.fin_at is None
    text = describe(summary)
    assert "client FIN at +2.000 ms after 100 bytes; server RST at +305.000 ms after 50 bytes" \
        in text
    assert cite(summary, "ends").startswith(
        "packets: connection 1 of 1: client FIN at +2.000 ms after 100 bytes; server RST")
    assert cite(summary, "") == ""  # only families that judge endings or waits cite


def test_data_retransmissions_and_syn_retries_are_counted():
    segments = [seg(0.0, CLIENT, SERVER, SYN, CLIENT_ISN)] + handshake(1.0) + [
        server_data(1.01, 0, 1000),
        server_data(1.02, 1000, 1000),
        server_data(1.25, 1000, 1000),   # the same range again
    ]
    (connection,) = summarize(segments, SERVER.port).connections
    assert connection.client_side.syns == 2
    assert connection.server_side.bytes_sent == 2000
    assert connection.server_side.retransmitted_segments == 1
    assert connection.server_side.retransmitted_bytes == 1000
    text = describe(summarize(segments, SERVER.port))
    assert "client SYN sent 2 times, server 1 segments (1000 bytes)" in text


def test_sequence_numbers_wrapping_at_4_gib_are_not_retransmissions():
    isn = (1 << 32) - 500
    segments = handshake(server_isn=isn) + [
        server_data(0.01, 0, 1000, isn=isn),
        server_data(0.02, 1000, 1000, isn=isn),   # seq wrapped past zero
    ]
    (connection,) = summarize(segments, SERVER.port).connections
    assert connection.server_side.bytes_sent == 2000
    assert connection.server_side.retransmitted_segments == 0


def test_zero_window_advertisements_are_counted_per_side():
    segments = handshake() + [
        server_data(0.01, 0, 60000),
        seg(0.011, CLIENT, SERVER, ACK, CLIENT_ISN + 1, SERVER_ISN + 60001, window=0),
        seg(0.2, CLIENT, SERVER, ACK, CLIENT_ISN + 1, SERVER_ISN + 60001, window=0),
    ]
    summary = summarize(segments, SERVER.port)
    (connection,) = summary.connections
    assert connection.client_side.zero_windows == 2
    assert connection.client_side.first_zero_window_at == pytest.approx(0.011)
    assert summary.metrics()["packets_zero_windows"] == 2
    assert "client advertised 0 2 times (first at +11.000 ms)" in describe(summary)


def nagle_exchange(start: float, offset: int, stall: float) -> list[Segment]:
    """A 100-byte request, then a reply written as 4 bytes + 96 bytes with Nagle on."""
    return [
        client_data(start, offset, 100),
        server_data(start + 0.0001, offset, 4),
        seg(start + stall, CLIENT, SERVER, ACK, CLIENT_ISN + 1 + offset + 100,
            SERVER_ISN + 1 + offset + 4),
        server_data(start + stall + 0.0001, offset + 4, 96),
    ]


def test_a_reply_waiting_for_the_delayed_ack_is_reported_as_a_nagle_stall():
    segments = handshake()
    for round_number in range(3):
        segments += nagle_exchange(0.01 + round_number * 0.1, round_number * 100, 0.040)
    summary = summarize(segments, SERVER.port)
    (connection,) = summary.connections
    assert len(connection.exchanges) == 3
    assert all(e.nagle_stall() for e in connection.exchanges)
    assert connection.largest_reply_gap()[0] == pytest.approx(0.040, abs=1e-6)
    assert summary.metrics()["packets_max_reply_gap_ms"] == pytest.approx(40.0, abs=0.01)
    assert "3 of 3 replies stalled until the client's ACK" in describe(summary)
    assert cite(summary, "replies").startswith(
        "packets: 3 replies stalled until the client's ACK (largest gap inside a reply 40.0 ms)")


def test_a_prompt_reply_in_two_segments_is_not_a_stall():
    segments = handshake() + nagle_exchange(0.01, 0, 0.0003)
    summary = summarize(segments, SERVER.port)
    assert not summary.connections[0].exchanges[0].nagle_stall()
    assert "stalled" not in describe(summary)
    assert "stalled" not in cite(summary, "replies")


def test_a_long_gap_without_the_client_ack_before_it_is_a_gap_but_not_nagle():
    segments = handshake() + [client_data(0.01, 0, 100), server_data(0.0101, 0, 4),
                              server_data(0.2, 4, 96)]
    summary = summarize(segments, SERVER.port)
    exchange = summary.connections[0].exchanges[0]
    assert exchange.largest_gap()[0] == pytest.approx(0.1899)
    assert not exchange.nagle_stall()
    assert "largest gap inside a reply 189.9 ms (request 1, after a 4-byte segment)" \
        in describe(summary)


def test_a_new_syn_on_the_same_port_pair_starts_a_new_connection():
    segments = (handshake() + [client_data(0.01, 0, 0, FIN | ACK),
                               server_data(0.011, 0, 0, FIN | ACK)]
                + handshake(1.0, client_isn=77777))
    summary = summarize(segments, SERVER.port)
    assert len(summary.connections) == 2
    assert summary.connections[1].start == pytest.approx(1.0)


def test_a_connection_opened_before_the_capture_is_marked_and_not_cited_first():
    earlier = Endpoint("127.0.0.1", 39999)
    segments = [seg(0.0, SERVER, earlier, FIN | ACK, 5, 6)] + handshake(0.001) + [
        seg(0.01, SERVER, CLIENT, RST | ACK, SERVER_ISN + 1, CLIENT_ISN + 1)]
    summary = summarize(segments, SERVER.port)
    assert "handshake: not seen (the connection was open before the capture started)" \
        in describe(summary)
    assert cite(summary, "ends").startswith("packets: connection 2 of 2: server RST")


def test_many_connections_are_listed_up_to_a_bound_then_counted():
    segments = []
    for index in range(MAX_CONNECTIONS_LISTED + 4):
        client = Endpoint("127.0.0.1", 41000 + index)
        start = index * 0.01
        segments += handshake(start, client=client)
        segments += [client_data(start + 0.001, 0, 0, FIN | ACK, client=client),
                     server_data(start + 0.002, 0, 0, FIN | ACK, client=client)]
    text = describe(summarize(segments, SERVER.port))
    assert text.count("\nconnection ") == MAX_CONNECTIONS_LISTED
    assert "4 more connections (4 of them ended with FIN from both sides" in text


def test_segments_of_other_ports_are_ignored():
    other = Endpoint("127.0.0.1", 6000)
    segments = handshake() + [seg(0.5, CLIENT, other, SYN, 1)]
    assert len(summarize(segments, SERVER.port).connections) == 1


def test_end_tracker_waits_for_both_fins_or_an_rst():
    tracker = EndTracker(SERVER.port)
    for segment in handshake():
        tracker.feed(segment)
    assert not tracker.all_ended()
    tracker.feed(client_data(0.01, 0, 0, FIN | ACK))
    assert not tracker.all_ended()
    tracker.feed(server_data(0.02, 0, 0, FIN | ACK))
    assert tracker.all_ended()
    other = Endpoint("127.0.0.1", 40001)
    for segment in handshake(1.0, client=other):
        tracker.feed(segment)
    assert not tracker.all_ended()
    tracker.feed(seg(1.1, SERVER, other, RST, SERVER_ISN + 1))
    assert tracker.all_ended()
    # FINs of a connection opened before the tracker started do not hold it up.
    tracker.feed(seg(2.0, SERVER, Endpoint("127.0.0.1", 39000), FIN | ACK, 1, 1))
    assert tracker.all_ended()


# -- frames ------------------------------------------------------------------------


def test_frames_parse_ipv4_and_ipv6_and_keep_the_ip_length_when_cut_short():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    v4 = bytes(Ether() / IP(src="127.0.0.1", dst="127.0.0.2")
               / TCP(sport=40000, dport=5000, flags="PA", seq=7, ack=9, window=0,
                     options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
               / (b"x" * 300))
    segment = parse_frame(v4[:80], time=1.5)  # cut like a 80-byte snaplen capture
    assert segment is not None
    assert (str(segment.src), str(segment.dst)) == ("127.0.0.1:40000", "127.0.0.2:5000")
    assert (segment.flags, segment.seq, segment.ack, segment.window, segment.payload) == (
        PSH | ACK, 7, 9, 0, 300)
    assert segment.flag_text == "P."
    assert tcp_flags(v4[:80]) == PSH | ACK
    assert tcp_payload(v4) == b"x" * 300

    v6 = bytes(Ether() / IPv6(src="::1", dst="::1") / TCP(sport=5000, dport=40000, flags="FA")
               / b"bye")
    segment = parse_frame(v6, time=0.0)
    assert segment is not None and str(segment.src) == "[::1]:5000"
    assert segment.has(FIN) and segment.payload == 3 and segment.sequence_space == 4
    assert tcp_payload(v6) == b"bye"


def test_frames_that_are_not_tcp_are_skipped():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Ether

    assert parse_frame(bytes(Ether() / ARP()), 0.0) is None
    assert parse_frame(bytes(Ether() / IP() / UDP()), 0.0) is None
    assert parse_frame(b"\x00" * 10, 0.0) is None
    assert tcp_flags(bytes(Ether() / IP() / UDP())) is None
