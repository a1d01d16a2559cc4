"""Every HTTP request the harness sends carries the Host a real client sends (issue 18).

``127.0.0.1:PORT`` over tcp, ``[::1]:PORT`` over tcp6, ``localhost`` over a
Unix socket, as curl sends for the URL it was given. Unit tests of the request
builders and drivers against a recording peer, and a self-test: the whole http
catalogue against a server that answers 400 without the right Host passes as
the reference server does.
"""

from __future__ import annotations

import socket
import threading

import pytest
from sockspec_runner import PROJECT, run_sockspec, server_cmd
from test_reference_client import ok_head, peer, read_request_head

from sockspec.drivers.http import send_get
from sockspec.drivers.load import get_then_close, reset_mid_request, unfinished_get_request
from sockspec.errors import SockspecError, UsageError
from sockspec.reference.http_fetch import build_get_request, fetch, host_header
from sockspec.scenarios.partial_reads import http_pieces
from sockspec.transport import TcpAddress, UnixAddress, connect

TIMEOUT = 5.0
TRANSPORTS = ["tcp", "tcp6", "unix"]
REQUIRES_HOST = PROJECT / "fixtures" / "servers" / "requires_host_http.py"


def expected_host(address) -> bytes:
    if isinstance(address, UnixAddress):
        return b"localhost"
    return (f"[{address.host}]" if ":" in address.host else address.host).encode() + \
        f":{address.port}".encode()


def test_host_header_is_what_curl_sends_for_each_transport():
    assert host_header(TcpAddress("127.0.0.1", 8080)) == "127.0.0.1:8080"
    assert host_header(TcpAddress("::1", 8080)) == "[::1]:8080"
    assert host_header(UnixAddress("/tmp/s.sock")) == "localhost"


def test_build_get_request_needs_a_host_and_leaves_it_out_only_on_request():
    with pytest.raises(TypeError):
        build_get_request("/x")  # type: ignore[call-arg]
    assert build_get_request("/x", host="[::1]:80") == b"GET /x HTTP/1.0\r\nHost: [::1]:80\r\n\r\n"
    assert build_get_request("/x", host=None) == b"GET /x HTTP/1.0\r\n\r\n"
    for bad in ("", "a b", "a\r\nX-Injected: 1"):
        with pytest.raises(UsageError):
            build_get_request("/x", host=bad)


def test_unfinished_request_and_pieces_carry_host():
    assert unfinished_get_request("/p", "localhost") == b"GET /p HTTP/1.0\r\nHost: localhost\r\n"
    assert b"\r\nHost: [::1]:9\r\n" in b"".join(http_pieces("[::1]:9"))


def recorder(requests: list[bytes], answer: bytes):
    def record(conn: socket.socket) -> None:
        requests.append(read_request_head(conn))
        conn.sendall(answer)
    return record


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fetch_send_get_and_load_drivers_send_the_transports_host(transport):
    requests: list[bytes] = []
    with peer(transport, recorder(requests, ok_head(2) + b"ok")) as running:
        address = running.address
        fetch(address, "/fetched", timeout=TIMEOUT)
        with connect(address, TIMEOUT) as sock:
            send_get(sock, "/sent")
            sock.recv(64)
        get_then_close(address, "/loaded", b"ok", TIMEOUT)
    host = expected_host(address)
    assert requests == [b"GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)
                        for path in (b"fetched", b"sent", b"loaded")]


def test_reset_mid_request_sends_half_a_head_with_host():
    got: list[bytes] = []
    done = threading.Event()

    def record(conn: socket.socket) -> None:
        data = b""
        try:
            while chunk := conn.recv(4096):
                data += chunk
        except OSError:
            pass
        got.append(data)
        done.set()

    with peer("unix", record) as running:
        try:
            reset_mid_request(running.address, TIMEOUT)
        except SockspecError:
            pass
        assert done.wait(TIMEOUT)
    assert got == [b"GET /never-finished HTTP/1.0\r\nHost: localhost\r\n"]


@pytest.mark.selftest
@pytest.mark.parametrize("transport", ["tcp6", "unix"])
def test_http_catalogue_passes_a_server_that_needs_host(transport):
    outcome = run_sockspec(*server_cmd(REQUIRES_HOST, "http", transport), "--transport",
                           transport)
    assert outcome.document is not None, outcome.stderr[-2000:]
    bad = sorted((r["scenario"], r["outcome"], r["evidence"][:200])
                 for r in outcome.results() if r["outcome"] in ("failed", "error"))
    assert not bad, bad
    assert outcome.results(outcome="passed")

