"""sockspec.drivers.http over a socketpair: head reading, streamed bodies, test bytes."""

import socket
import threading

import pytest

from sockspec.drivers.http import counting_bytes, read_response_start, stream_body
from sockspec.errors import PeerError
from sockspec.transport import StreamEnd

TIMEOUT = 5.0


def serve_bytes(chunks: list[bytes], *, close: bool = True):
    """A socketpair whose far end writes ``chunks`` (then closes) from a thread."""
    near, far = socket.socketpair()

    def write() -> None:
        for chunk in chunks:
            far.sendall(chunk)
        if close:
            far.close()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return near, far, thread


def test_counting_bytes_counts_modulo_251_from_start():
    data = counting_bytes(600, start=250)
    assert len(data) == 600
    assert data[:3] == bytes([250, 0, 1])
    assert all(b == (250 + i) % 251 for i, b in enumerate(data))
    assert counting_bytes(0) == b""


def test_body_split_across_head_and_many_chunks_keeps_only_the_tail():
    body = counting_bytes(3 * 1024 * 1024 + 5)
    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    near, far, thread = serve_bytes([head + body[:10], body[10:70_000], body[70_000:]])
    with near:
        start = read_response_start(near, TIMEOUT, "test")
        assert start.head.status == 200 and start.head.content_length == len(body)
        result = stream_body(near, start, len(body), tail_size=7, idle_timeout=TIMEOUT,
                             deadline_s=TIMEOUT)
    thread.join(TIMEOUT)
    assert (result.length, result.tail, result.end) == (len(body), body[-7:], StreamEnd.LIMIT)


def test_short_body_reports_fin_and_the_bytes_that_came():
    head = b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n"
    near, far, thread = serve_bytes([head + b"abc", b"de"])
    with near:
        start = read_response_start(near, TIMEOUT, "test")
        result = stream_body(near, start, 100, tail_size=4, idle_timeout=TIMEOUT,
                             deadline_s=TIMEOUT)
    thread.join(TIMEOUT)
    assert (result.length, result.tail, result.end) == (5, b"bcde", StreamEnd.FIN)


def test_body_bytes_past_the_expected_length_are_not_counted():
    near, far, thread = serve_bytes([b"HTTP/1.0 200 OK\r\n\r\n0123456789"])
    with near:
        start = read_response_start(near, TIMEOUT, "test")
        result = stream_body(near, start, 4, tail_size=2, idle_timeout=TIMEOUT,
                             deadline_s=TIMEOUT)
    thread.join(TIMEOUT)
    assert (result.length, result.tail, result.end) == (4, b"23", StreamEnd.LIMIT)


def test_silent_peer_ends_the_body_by_timeout():
    near, far, thread = serve_bytes([b"HTTP/1.0 200 OK\r\n\r\nab"], close=False)
    with near, far:
        start = read_response_start(near, TIMEOUT, "test")
        result = stream_body(near, start, 10, tail_size=1, idle_timeout=0.05,
                             deadline_s=TIMEOUT)
    assert (result.length, result.end) == (2, StreamEnd.TIMEOUT)


def test_stream_ending_inside_the_head_is_a_peer_error():
    near, far, thread = serve_bytes([b"HTTP/1.0 200 OK\r\nContent-"])
    with near, pytest.raises(PeerError, match="before the end of the response head"):
        read_response_start(near, TIMEOUT, "GET /x")
    thread.join(TIMEOUT)
