"""Unit tests for harness/protocol/http.py: no sockets, only bytes and a temp directory."""

from __future__ import annotations

import os

import pytest

from sockspec.protocol.http import (
    MAX_HEAD_BYTES,
    ConnectionClosed,
    NeedData,
    ParseError,
    Refused,
    Request,
    RequestParser,
    ResolvedFile,
    error_response,
    parse_head,
    resolve_path,
    response_head,
)


def parse_all(data: bytes, *, eof: bool = False, piece: int | None = None):
    parser = RequestParser()
    step = piece or max(len(data), 1)
    for start in range(0, len(data), step):
        parser.receive_data(data[start : start + step])
    if eof:
        parser.receive_data(b"")
    return parser.next_event()


# ---------------------------------------------------------------- parser


def test_simple_request() -> None:
    event = parse_all(b"GET /index.html HTTP/1.0\r\n\r\n")
    assert event == Request("GET", "/index.html", "HTTP/1.0", ())


def test_http11_with_headers_lowercased_and_trimmed() -> None:
    event = parse_all(b"GET /a HTTP/1.1\r\nHost: example\r\nX-Thing:\t v a l \r\n\r\n")
    assert event == Request(
        "GET", "/a", "HTTP/1.1", (("host", "example"), ("x-thing", "v a l"))
    )


@pytest.mark.parametrize("piece", [1, 2, 3, 7])
def test_request_in_pieces(piece: int) -> None:
    data = b"GET /x/y?z=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
    parser = RequestParser()
    for start in range(0, len(data), piece):
        assert parser.next_event() == NeedData()
        parser.receive_data(data[start : start + piece])
    assert parser.next_event() == Request(
        "GET", "/x/y?z=1", "HTTP/1.1", (("host", "h"), ("accept", "*/*"))
    )


@pytest.mark.parametrize(
    "data",
    [
        b"GET /a HTTP/1.0\n\n",
        b"GET /a HTTP/1.0\r\n\n",
        b"GET /a HTTP/1.0\nHost: h\n\r\n",
        b"\r\n\r\nGET /a HTTP/1.0\r\n\r\n",  # leading empty lines are skipped
    ],
)
def test_bare_lf_and_leading_blank_lines_tolerated(data: bytes) -> None:
    event = parse_all(data, piece=1)
    assert isinstance(event, Request)
    assert event.target == "/a"


def test_incomplete_head_needs_data() -> None:
    assert parse_all(b"GET /a HTTP/1.0\r\nHost: x\r\n") == NeedData()


def test_eof_before_anything_is_connection_closed() -> None:
    assert parse_all(b"", eof=True) == ConnectionClosed()
    assert parse_all(b"\r\n", eof=True) == ConnectionClosed()


def test_eof_inside_head_is_400() -> None:
    event = parse_all(b"GET /a HTTP/1.0\r\n", eof=True)
    assert isinstance(event, ParseError) and event.status == 400


def test_head_over_limit_without_end_is_431() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET /" + b"a" * MAX_HEAD_BYTES)
    event = parser.next_event()
    assert isinstance(event, ParseError) and event.status == 431


def test_head_over_limit_with_end_is_431() -> None:
    head = b"GET /a HTTP/1.0\r\nX: " + b"v" * MAX_HEAD_BYTES + b"\r\n\r\n"
    event = parse_all(head, piece=1000)
    assert isinstance(event, ParseError) and event.status == 431


def test_head_exactly_at_limit_is_accepted() -> None:
    start, end = b"GET /a HTTP/1.0\r\nX: ", b"\r\n\r\n"
    head = start + b"v" * (MAX_HEAD_BYTES - len(start) - len(end)) + end
    assert len(head) == MAX_HEAD_BYTES
    assert isinstance(parse_all(head), Request)


def test_endless_input_is_refused_not_buffered() -> None:
    parser = RequestParser()
    for _ in range(1000):  # 64 MiB offered; the parser must stop at the limit
        parser.receive_data(b"x" * 65536)
    event = parser.next_event()
    assert isinstance(event, ParseError) and event.status == 431


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9 style: no version
        (b"GET  / HTTP/1.0\r\n\r\n", 400),
        (b"GET / HTTP/1.0 x\r\n\r\n", 400),
        (b"GET\t/ HTTP/1.0\r\n\r\n", 400),
        (b"G@T / HTTP/1.0\r\n\r\n", 400),
        (b"GET x HTTP/1.0\r\n\r\n", 400),
        (b"GET http://h/ HTTP/1.0\r\n\r\n", 400),
        (b"GET /\xff HTTP/1.0\r\n\r\n", 400),
        (b"GET / FTP/1.0\r\n\r\n", 400),
        (b"GET / HTTP/1.x\r\n\r\n", 400),
        (b"GET / HTTP/10.0\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"GET / HTTP/1.0\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nName : v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\n: v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: b\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: b\x00c\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: b\rc\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\n\r\n", 405),
        (b"HEAD / HTTP/1.0\r\n\r\n", 405),
        (b"get / HTTP/1.0\r\n\r\n", 405),  # methods are case-sensitive
    ],
)
def test_malformed_or_unsupported(head: bytes, status: int) -> None:
    event = parse_all(head)
    assert isinstance(event, ParseError), event
    assert event.status == status, event.reason


def test_terminal_event_is_sticky_and_later_bytes_ignored() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
    first = parser.next_event()
    parser.receive_data(b"garbage that is not ours to parse")
    parser.receive_data(b"")
    assert first == parser.next_event() == Request("GET", "/a", "HTTP/1.0", ())


def test_parse_head_empty_is_400() -> None:
    event = parse_head(b"\r\n\r\n")
    assert isinstance(event, ParseError) and event.status == 400


# ----------------------------------------------------------- path policy


@pytest.fixture
def tree(tmp_path):
    """tmp/root/{a.txt, a b, \\xff, sub/inner.txt, link-in, link-out, link-dir-out, fifo}; tmp/x."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "a b").write_bytes(b"space")
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (tmp_path / "x").write_bytes(b"SECRET")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_bytes(b"SECRET")
    os.symlink("a.txt", root / "link-in")
    os.symlink(tmp_path / "x", root / "link-out")
    os.symlink("../outside", root / "link-dir-out")
    os.mkfifo(root / "fifo")
    with open(os.fsencode(root) + b"/\xff", "wb") as f:
        f.write(b"nonutf8")
    return root


def status_of(result: ResolvedFile | Refused) -> int:
    return 200 if isinstance(result, ResolvedFile) else result.status


@pytest.mark.parametrize(
    "target",
    [
        "/../x",
        "/%2e%2e/x",
        "/%2E%2E/x",
        "/..%2fx",
        "/..%2Fx",
        "/sub/../../x",
        "/sub/%2e%2e/%2e%2e/x",
        "/sub/..%2f..%2fx",
        "/%2e%2e%2fx",
        "//../x",
        "/./../x",
        "/sub/../a.txt",  # stays inside, but every '..' segment is refused
        "/..",
    ],
)
def test_dotdot_is_403(tree, target: str) -> None:
    assert status_of(resolve_path(str(tree), target)) == 403


@pytest.mark.parametrize("target", ["/link-out", "/link-dir-out/x"])
def test_symlink_escaping_root_is_403(tree, target: str) -> None:
    assert status_of(resolve_path(str(tree), target)) == 403


def test_symlink_inside_root_is_served(tree) -> None:
    result = resolve_path(str(tree), "/link-in")
    assert result == ResolvedFile(os.path.realpath(tree / "a.txt"))


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/a.txt", "a.txt"),
        ("/a.txt?query=1", "a.txt"),
        ("/a%20b", "a b"),
        ("/sub/inner.txt", "sub/inner.txt"),
        ("//sub//./inner.txt", "sub/inner.txt"),
        ("/%ff", os.fsdecode(b"\xff")),
    ],
)
def test_files_inside_root(tree, target: str, name: str) -> None:
    assert resolve_path(str(tree), target) == ResolvedFile(os.path.realpath(tree / name))


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/missing", 404),
        ("/sub", 404),
        ("/sub/", 404),
        ("/", 404),
        ("/a.txt/more", 404),  # ENOTDIR
        ("/fifo", 403),
        ("/a%00.txt", 400),
        ("relative", 400),
    ],
)
def test_refusals(tree, target: str, status: int) -> None:
    assert status_of(resolve_path(str(tree), target)) == status


def test_root_reached_through_a_symlink(tree, tmp_path) -> None:
    alias = tmp_path / "alias"
    os.symlink(tree, alias)
    assert status_of(resolve_path(str(alias), "/a.txt")) == 200
    assert status_of(resolve_path(str(alias), "/link-out")) == 403


# -------------------------------------------------------------- responses


def test_response_head_exact() -> None:
    assert response_head(12345) == b"HTTP/1.0 200 OK\r\nContent-Length: 12345\r\n\r\n"


@pytest.mark.parametrize("status", [400, 403, 404, 405, 408, 431, 505])
def test_error_response_is_complete(status: int) -> None:
    response = error_response(status)
    head, sep, body = response.partition(b"\r\n\r\n")
    assert sep
    lines = head.split(b"\r\n")
    assert lines[0].startswith(f"HTTP/1.0 {status} ".encode())
    assert f"Content-Length: {len(body)}".encode() in lines
    assert b"Connection: close" in lines
    assert body.startswith(str(status).encode())
    assert (b"Allow: GET" in lines) == (status == 405)
