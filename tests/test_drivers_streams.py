"""harness/drivers/streams.py: the pure parts without sockets, the I/O parts over loopback."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from sockspec.drivers.streams import (
    LatencySummary,
    PacedSink,
    echo_many_at_once,
    parse_small_response,
    printable_payload,
    read_in_bursts,
    send_in_pieces,
    send_with_fin,
)
from sockspec.reference.server import ReferenceServer
from sockspec.transport import StreamEnd, TcpAddress, UnixAddress

IO_TIMEOUT = 5.0


def test_latency_summary_percentiles_by_nearest_rank():
    summary = LatencySummary.from_seconds([ms / 1000 for ms in range(20, 0, -1)])
    assert (summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms) == pytest.approx(
        (10.5, 18.0, 20.0, 20.0))
    assert summary.count == 20
    assert set(summary.as_metrics("latency")) == {
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "latency_count"}


def test_latency_summary_refuses_no_samples():
    with pytest.raises(ValueError):
        LatencySummary.from_seconds([])


def test_parse_small_response_splits_head_and_body():
    response = parse_small_response(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    assert response.head is not None and response.head.status == 200
    assert response.body == b"abc" and response.status_line == "HTTP/1.0 200 OK"


@pytest.mark.parametrize("data", [b"HTTP/1.0 200 OK\r\n", b"garbage\r\n\r\nbody", b""])
def test_parse_small_response_reports_what_is_wrong(data):
    response = parse_small_response(data)
    assert response.head is None and response.problem
    assert response.received == len(data) and response.status_line.startswith("(none")


def test_printable_payload_is_reproducible_and_has_no_control_bytes():
    payload = printable_payload(100_000, seed=7)
    assert payload == printable_payload(100_000, seed=7) != printable_payload(100_000, seed=8)
    assert len(payload) == 100_000 and not set(payload) & {0, 10, 13}


def test_paced_sink_pauses_once_per_burst():
    sink = PacedSink(burst_bytes=10, pause_s=0.0)
    for size in (4, 4, 4, 25):
        sink(memoryview(bytes(size)))
    assert sink.pauses == 3


def test_pieces_arrive_as_one_stream_and_bursts_report_the_end():
    left, right = socket.socketpair()
    with left, right:
        sent = send_in_pieces(left, [b"ab", b"cd", b"ef"], pause_s=0.0)
        assert (sent.pieces_sent, sent.bytes_sent, sent.error) == (3, 6, None)
        left.shutdown(socket.SHUT_WR)
        result = read_in_bursts(right, 10, burst_bytes=4, pause_s=0.0, idle_timeout=IO_TIMEOUT)
    assert result.data == b"abcdef" and result.end is StreamEnd.FIN and result.bursts == 2


def test_send_in_pieces_stops_at_a_closed_peer():
    left, right = socket.socketpair()
    right.close()
    with left:
        sent = send_in_pieces(left, [b"ab", b"cd"], pause_s=0.0)
    assert sent.pieces_sent == 0 and sent.error


def test_send_with_fin_delivers_data_then_eof_over_tcp():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), IO_TIMEOUT) as client:
            peer, _ = listener.accept()
            with peer:
                peer.settimeout(IO_TIMEOUT)
                send_with_fin(client, b"x" * 9000)
                received = bytearray()
                while chunk := peer.recv(65536):
                    received += chunk
    assert received == b"x" * 9000


def test_echo_many_at_once_against_the_reference_echo_server():
    directory = tempfile.mkdtemp(prefix="ss-")
    try:
        with ReferenceServer(UnixAddress(os.path.join(directory, "s")), "echo") as address:
            result = echo_many_at_once(address, 8, IO_TIMEOUT)
    finally:
        os.rmdir(directory)
    assert result.echoed == tuple(range(8)) and not result.silent and not result.wrong


def test_echo_many_at_once_names_the_clients_nobody_answered():
    # A listener that never accepts: connects succeed (accept queue), no echo comes.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        address = TcpAddress("127.0.0.1", listener.getsockname()[1])
        result = echo_many_at_once(address, 3, timeout=0.3)
    assert result.echoed == () and result.silent == (0, 1, 2)
