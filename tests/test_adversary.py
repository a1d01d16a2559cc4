"""The harness's own server (sockspec.adversary): each plan piece seen from a raw client socket."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import time

import pytest

from sockspec.adversary import (
    AdversaryServer,
    Dribble,
    Ending,
    FileBody,
    Listening,
    Plan,
    max_length_unix_path,
)
from sockspec.adversary.server import tcp_accept_queue_length
from sockspec.reference.client import echo_roundtrip, fetch
from sockspec.transport import (
    UNIX_PATH_MAX,
    StreamEnd,
    TcpAddress,
    UnixAddress,
    connect,
    read_until_end,
)

IO_TIMEOUT = 5.0   # generous "did not hang" bound; the machine is shared and noisy


@pytest.fixture
def socket_dir():
    path = tempfile.mkdtemp(prefix="ss-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["tcp", "unix"])
def address(request, socket_dir):
    if request.param == "unix":
        return UnixAddress(os.path.join(socket_dir, "a.sock"))
    return TcpAddress("127.0.0.1", 0)


def test_default_plan_is_the_reference_echo(address):
    with AdversaryServer(address, Plan("echo")) as server:
        result = echo_roundtrip(server.address, b"hello" * 1000, timeout=IO_TIMEOUT)
    assert result.ok, result.describe()
    (log,) = server.connections
    assert log.received == log.sent == 5000 and log.client_end == "FIN"
    assert "FIN" in log.ending


def test_http_serves_the_planned_path_and_refuses_others(address):
    body = b"<body>" * 100
    with AdversaryServer(address, Plan("http", body=body, url_path="/x.bin")) as server:
        good = fetch(server.address, "/x.bin", timeout=IO_TIMEOUT)
        bad = fetch(server.address, "/other", timeout=IO_TIMEOUT)
    assert good.status == 200 and good.body_length == len(body) and good.end is StreamEnd.FIN
    assert bad.status == 404
    assert "asked for /other" in server.connections[1].error


def test_dribble_writes_one_byte_per_send(address):
    data = bytes(range(32, 127)) * 2
    plan = Plan("echo", dribble=Dribble(segment_bytes=1, pause_s=0.0005))
    with AdversaryServer(address, plan) as server:
        result = echo_roundtrip(server.address, data, timeout=IO_TIMEOUT)
    assert result.ok, result.describe()
    assert server.connections[0].segments == len(data)


def test_stop_after_then_reset_over_tcp():
    plan = Plan("http", body=b"x" * 10000, stop_after=4000, ending=Ending.RESET)
    with AdversaryServer(TcpAddress("127.0.0.1", 0), plan) as server:
        response = fetch(server.address, "/", timeout=IO_TIMEOUT)
    assert response.body_length == 4000 and response.end is StreamEnd.RST
    assert server.connections[0].cut and "RST" in server.connections[0].ending


def test_unix_reset_is_close_with_unread_input(socket_dir):
    plan = Plan("echo", stop_after=1000, ending=Ending.RESET)
    with AdversaryServer(UnixAddress(os.path.join(socket_dir, "r.sock")), plan) as server:
        with connect(server.address, IO_TIMEOUT) as sock:
            sock.sendall(b"y" * 5000)
            received, end = read_until_end(sock, IO_TIMEOUT)
    assert len(received) == 1000 and end is StreamEnd.RST
    assert "4000 unread input bytes" in server.connections[0].ending


def test_short_reply_then_fin(address):
    with AdversaryServer(address, Plan("echo", stop_after=10)) as server:
        result = echo_roundtrip(server.address, b"z" * 100, timeout=IO_TIMEOUT)
    assert result.received == b"z" * 10 and result.end is StreamEnd.FIN


def test_half_close_keeps_reading_after_the_fin(address):
    plan = Plan("echo", echo_until=5, ending=Ending.HALF_CLOSE_AND_WAIT)
    with AdversaryServer(address, plan) as server:
        with connect(server.address, IO_TIMEOUT) as sock:
            sock.sendall(b"12345")
            received, end = read_until_end(sock, IO_TIMEOUT)
            sock.sendall(b"after the server's FIN")  # the server still reads
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + IO_TIMEOUT
            while not server.connections[0].client_end and time.monotonic() < deadline:
                time.sleep(0.01)
    assert (received, end) == (b"12345", StreamEnd.FIN)
    log = server.connections[0]
    assert log.client_end == "FIN" and log.received == 5 + len(b"after the server's FIN")
    assert log.fin_at is not None and log.client_end_at >= log.fin_at


def test_no_answer_holds_the_connection_silently(address):
    plan = Plan("http", body=b"never sent", answer=False, ending=Ending.HOLD_OPEN)
    with AdversaryServer(address, plan) as server:
        with connect(server.address, IO_TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            received, end = read_until_end(sock, 0.3)
        started = time.monotonic()
    assert time.monotonic() - started < IO_TIMEOUT  # stop() ended the held connection
    assert (received, end) == (b"", StreamEnd.TIMEOUT)
    assert server.connections[0].sent == 0


def test_full_tcp_accept_queue_drops_the_client_until_accepting():
    listening = Listening(backlog=1, fill_queue=True, accepts=False)
    with AdversaryServer(TcpAddress("127.0.0.1", 0), Plan("echo"), listening) as server:
        assert server.queue_filled_with == 2  # the accept queue holds backlog + 1
        assert tcp_accept_queue_length(server.address) == 2
        probe = socket.socket()
        probe.settimeout(0.5)
        with pytest.raises(TimeoutError):  # the SYN is dropped; connect() waits
            probe.connect(server.address.sockaddr)
        probe.close()
    assert "never accepted" in server.describe()


def test_full_queue_drained_late_lets_the_client_in(address):
    listening = Listening(backlog=1, fill_queue=True, accept_after_s=0.3)
    with AdversaryServer(address, Plan("echo"), listening) as server:
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            try:
                result = echo_roundtrip(server.address, b"late", timeout=IO_TIMEOUT)
                break
            except Exception as exc:  # Unix: EAGAIN at once while the queue is full
                assert isinstance(address, UnixAddress), exc
                assert time.monotonic() < deadline
                time.sleep(0.05)
    assert result.ok and server.accepting_since is not None
    assert len(server.connections) == 1  # the fillers were accepted and closed unserved


def test_full_unix_queue_refuses_a_non_blocking_connect(socket_dir):
    listening = Listening(backlog=1, fill_queue=True, accepts=False)
    with AdversaryServer(UnixAddress(os.path.join(socket_dir, "q.sock")), Plan("echo"),
                         listening) as server:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        with pytest.raises(BlockingIOError) as caught:
            probe.connect(server.address.path)
        probe.close()
    assert caught.value.errno == errno.EAGAIN


def test_maximum_length_unix_path(socket_dir):
    path = max_length_unix_path(socket_dir)
    assert len(path.encode()) == UNIX_PATH_MAX - 1
    with AdversaryServer(UnixAddress(path), Plan("echo")) as server:
        assert echo_roundtrip(server.address, b"max", timeout=IO_TIMEOUT).ok
    assert not os.path.exists(path)


def test_file_body_goes_out_with_sendfile(socket_dir):
    path = os.path.join(socket_dir, "body.bin")
    with open(path, "wb") as f:
        f.write(b"0123456789" * 1000)
    plan = Plan("http", body=FileBody(path, 10000))
    with AdversaryServer(TcpAddress("127.0.0.1", 0), plan) as server:
        response = fetch(server.address, "/", timeout=IO_TIMEOUT)
    assert response.status == 200 and response.body_length == 10000


def test_stop_is_bounded_while_a_client_sits_silent(address):
    server = AdversaryServer(address, Plan("echo", hold_limit_s=600))
    server.start()
    sock = connect(server.address, IO_TIMEOUT)
    try:
        deadline = time.monotonic() + IO_TIMEOUT
        while not server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < IO_TIMEOUT
    finally:
        sock.close()


@pytest.mark.parametrize("changes, message", [
    ({"profile": "ftp"}, "unknown profile"),
    ({"body": FileBody("/f", 1), "stop_after": 1}, "sent whole"),
    ({"url_path": "x"}, "must start with"),
])
def test_plan_refuses_impossible_combinations(changes, message):
    with pytest.raises(ValueError, match=message):
        Plan(**{"profile": "http", **changes})
