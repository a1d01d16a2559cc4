"""The pure HTTP response-head parser: bytes in, ResponseHead out, no sockets."""

from __future__ import annotations

import pytest

from sockspec.errors import PeerError
from sockspec.protocol.http_response import (
    NEED_DATA,
    MalformedResponse,
    ResponseHeadParser,
    parse_response_head,
)

OK_HEAD = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nX-Thing:  spaced value \r\n\r\n"


def test_complete_head_is_parsed_with_fields_in_order() -> None:
    head = parse_response_head(OK_HEAD)
    assert (head.version, head.status, head.reason) == ("HTTP/1.0", 200, "OK")
    assert head.headers == (("content-length", "5"), ("x-thing", "spaced value"))
    assert head.header("CONTENT-LENGTH") == "5"
    assert head.header("missing") is None
    assert head.content_length == 5
    assert head.size == len(OK_HEAD)


def test_head_fed_one_byte_at_a_time_completes_exactly_at_the_blank_line() -> None:
    parser = ResponseHeadParser()
    for index, byte in enumerate(OK_HEAD):
        assert parser.next_event() is NEED_DATA, f"head complete early, at byte {index}"
        parser.receive_data(bytes([byte]))
    head = parser.next_event()
    assert head is not NEED_DATA and head.status == 200
    assert parser.trailing_data == b""


def test_body_in_same_chunk_as_head_is_trailing_data() -> None:
    parser = ResponseHeadParser()
    parser.receive_data(OK_HEAD + b"hel")
    head = parser.next_event()
    assert head is not NEED_DATA
    assert parser.trailing_data == b"hel"
    assert parser.bytes_received == len(OK_HEAD) + 3


def test_bare_lf_line_ends_are_accepted() -> None:
    parser = ResponseHeadParser()
    parser.receive_data(b"HTTP/1.1 404 Not Found\nContent-Length: 0\n\nrest")
    head = parser.next_event()
    assert head is not NEED_DATA
    assert (head.status, head.reason, head.content_length) == (404, "Not Found", 0)
    assert parser.trailing_data == b"rest"


def test_missing_reason_and_missing_content_length() -> None:
    head = parse_response_head(b"HTTP/1.0 200\r\n\r\n")
    assert (head.status, head.reason, head.content_length) == (200, "", None)


@pytest.mark.parametrize("status", [100, 204, 304])
def test_statuses_without_body(status: int) -> None:
    assert parse_response_head(f"HTTP/1.0 {status} X\r\n\r\n".encode()).has_no_body


def test_repeated_identical_content_length_is_one_value() -> None:
    head = parse_response_head(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\ncontent-length: 7, 7\r\n\r\n")
    assert head.content_length == 7


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        (b"Content-Length: 7\r\nContent-Length: 8\r\n", "conflicting"),
        (b"Content-Length: -1\r\n", "not a non-negative integer"),
        (b"Content-Length: 1e3\r\n", "not a non-negative integer"),
        (b"Content-Length: \xd9\xa3\r\n", "not a non-negative integer"),  # Arabic-Indic 3
        (b"Transfer-Encoding: chunked\r\n", "Transfer-Encoding"),
    ],
)
def test_bad_framing_is_refused_with_reason(fields: bytes, complaint: str) -> None:
    head = parse_response_head(b"HTTP/1.0 200 OK\r\n" + fields + b"\r\n")
    with pytest.raises(MalformedResponse, match=complaint):
        _ = head.content_length


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"HTTP/1.0 20 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1 200 OK\r\n\r\n", "bad status line"),
        (b"http/1.0 200 OK\r\n\r\n", "bad status line"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "bad status line"),
        (b"HTTP/1.0 200 OK\r\nNoColon\r\n\r\n", "bad header line"),
        (b"HTTP/1.0 200 OK\r\nBad Name: x\r\n\r\n", "bad header line"),
        (b"HTTP/1.0 200 OK\r\nName : x\r\n\r\n", "bad header line"),
        (b"HTTP/1.0 200 OK\r\nA: b\r\n folded\r\n\r\n", "folding"),
        (b"HTTP/1.0 200 OK\r\nA: b\rc\r\n\r\n", "CR or NUL"),
        (b"HTTP/1.0 200 OK\r\nA: b\x00\r\n\r\n", "CR or NUL"),
    ],
)
def test_malformed_heads_raise_one_line_errors(raw: bytes, complaint: str) -> None:
    with pytest.raises(MalformedResponse, match=complaint) as caught:
        parse_response_head(raw)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, PeerError)  # callers catching PeerError see it too


def test_eof_before_end_of_head_is_malformed_with_count() -> None:
    parser = ResponseHeadParser()
    parser.receive_data(b"HTTP/1.0 200 OK\r\nContent-")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"")
    with pytest.raises(MalformedResponse, match="peer closed after 25 bytes"):
        parser.next_event()


def test_eof_before_any_byte() -> None:
    parser = ResponseHeadParser()
    parser.receive_data(b"")
    with pytest.raises(MalformedResponse, match="peer closed after 0 bytes"):
        parser.next_event()


def test_endless_head_raises() -> None:
    parser = ResponseHeadParser(max_head_bytes=1024)
    parser.receive_data(b"HTTP/1.0 200 OK\r\n" + b"X: y\r\n" * 300)
    with pytest.raises(MalformedResponse, match="no end of response head within 1024 bytes"):
        parser.next_event()


def test_feeding_after_head_is_a_caller_error() -> None:
    parser = ResponseHeadParser()
    parser.receive_data(OK_HEAD)
    assert parser.next_event() is not NEED_DATA
    with pytest.raises(RuntimeError):
        parser.receive_data(b"more")
