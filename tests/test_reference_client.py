"""The reference client against small, deliberately (mis)behaving peers in threads.

Peers are plain blocking sockets over TCP 127.0.0.1, ::1 and Unix, so these
tests do not depend on the reference server. Every peer socket has a timeout
and every thread is joined with a bound.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sockspec.errors import AddressError, ConnectError, PeerError, UsageError
from sockspec.protocol.http_response import MalformedResponse
from sockspec.reference import client
from sockspec.reference.client import (
    download,
    echo_roundtrip,
    fetch,
    file_digest,
    ping_pong,
    upload_file,
)
from sockspec.reference.stream_digest import StreamDigest, bytes_digest
from sockspec.transport import Address, StreamEnd, TcpAddress, UnixAddress

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PEER_TIMEOUT_S = 10.0      # bound on every blocking call a peer makes
CLIENT_TIMEOUT_S = 10.0    # generous: only "did not hang" matters
SILENT_PEER_TIMEOUT_S = 0.5
TRANSPORTS = ["tcp", "tcp6", "unix"]
ALL_BYTES = bytes(range(256))

Handler = Callable[[socket.socket], None]


class ThreadPeer:
    """A listener whose every connection is served by ``handler(conn)`` in a thread."""

    def __init__(
        self, transport: str, handler: Handler, release: threading.Event | None = None
    ) -> None:
        self.handler = handler
        self.errors: list[BaseException] = []
        self.release = release or threading.Event()  # set on close: frees silent handlers
        self._threads: list[threading.Thread] = []
        self._socket_dir: str | None = None
        if transport == "unix":
            # pytest's tmp_path can exceed sun_path's 108 bytes; /tmp/ss-XXXX cannot.
            self._socket_dir = tempfile.mkdtemp(prefix="ss-")
            path = os.path.join(self._socket_dir, "peer.sock")
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(path)
            self.address: Address = UnixAddress(path)
        else:
            host = "::1" if transport == "tcp6" else "127.0.0.1"
            family = socket.AF_INET6 if transport == "tcp6" else socket.AF_INET
            self.listener = socket.socket(family, socket.SOCK_STREAM)
            self.listener.bind((host, 0))
            self.address = TcpAddress(host, self.listener.getsockname()[1])
        self.listener.listen(16)
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # listener shut down by close()
            conn.settimeout(PEER_TIMEOUT_S)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError as exc:  # a peer seeing the client's RST is not a test failure
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self) -> None:
        self.release.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self.listener.close()
        self._accepter.join(PEER_TIMEOUT_S)
        for thread in list(self._threads):
            thread.join(PEER_TIMEOUT_S)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


@contextmanager
def peer(
    transport: str, handler: Handler, release: threading.Event | None = None
) -> Iterator[ThreadPeer]:
    running = ThreadPeer(transport, handler, release)
    try:
        yield running
    finally:
        running.close()


# --------------------------------------------------------------------------- peer behaviours


def recv_until_eof(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def echo_streaming(conn: socket.socket) -> None:
    """Echo as bytes arrive; FIN after the client's FIN."""
    while chunk := conn.recv(65536):
        conn.sendall(chunk)


def echo_after_eof(conn: socket.socket) -> None:
    """Answers only once the client's FIN arrived: proves the client half-closed."""
    conn.sendall(recv_until_eof(conn))


def reset_connection(conn: socket.socket) -> None:
    """Close with RST. TCP: SO_LINGER {1, 0}. Unix: closing with unread data makes
    the peer's next read fail with ECONNRESET (unix_release_sock)."""
    if conn.family != socket.AF_UNIX:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def read_request_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_peer(
    head: bytes, body: bytes = b"", *, then: str = "close", release: threading.Event | None = None
) -> Handler:
    """Answer any request with ``head`` + ``body``; then "close" (FIN), "reset", or
    "hang" (until ``release`` is set, bounded)."""

    def handle(conn: socket.socket) -> None:
        if then == "reset":
            conn.recv(5)  # leave most of the request unread, so Unix close() resets too
        else:
            read_request_head(conn)
        conn.sendall(head + body)
        if then == "reset":
            reset_connection(conn)
        elif then == "hang":
            assert release is not None
            release.wait(PEER_TIMEOUT_S)

    return handle


def ok_head(length: int | None) -> bytes:
    length_line = b"" if length is None else b"Content-Length: %d\r\n" % length
    return b"HTTP/1.0 200 OK\r\n" + length_line + b"\r\n"


# --------------------------------------------------------------------------- echo


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_byte_value_round_trips_then_fin(transport: str) -> None:
    payload = ALL_BYTES * 64
    with peer(transport, echo_streaming) as running:
        result = echo_roundtrip(running.address, payload, timeout=CLIENT_TIMEOUT_S)
    assert result.ok, result.describe()
    assert result.end is StreamEnd.FIN
    assert result.first_difference() is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_half_close_lets_an_eof_waiting_peer_answer(transport: str) -> None:
    with peer(transport, echo_after_eof) as running:
        result = echo_roundtrip(str(running.address), b"after FIN", timeout=CLIENT_TIMEOUT_S)
    assert result.ok, result.describe()


def test_chunked_sends_reassemble() -> None:
    payload = ALL_BYTES * 40
    with peer("tcp", echo_streaming) as running:
        result = echo_roundtrip(running.address, payload, timeout=CLIENT_TIMEOUT_S, chunk=7)
    assert result.ok, result.describe()


def test_payload_larger_than_socket_buffers_does_not_deadlock() -> None:
    payload = ALL_BYTES * (16 * 1024)  # 4 MiB: far more than loopback buffers hold
    with peer("unix", echo_streaming) as running:
        result = echo_roundtrip(running.address, payload, timeout=CLIENT_TIMEOUT_S)
    assert result.ok, result.describe()


def test_without_half_close_reads_exactly_the_payload() -> None:
    with peer("tcp", echo_streaming) as running:
        result = echo_roundtrip(
            running.address, b"no FIN", timeout=CLIENT_TIMEOUT_S, half_close=False
        )
    assert result.matches() and result.end is StreamEnd.LIMIT
    assert not result.ok  # "ok" means an orderly FIN, which we never asked for


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reset_is_reported_as_rst_not_success(transport: str) -> None:
    def echo_some_then_reset(conn: socket.socket) -> None:
        conn.sendall(conn.recv(10))
        reset_connection(conn)  # the rest of the payload is left unread

    with peer(transport, echo_some_then_reset) as running:
        result = echo_roundtrip(running.address, b"x" * 100_000, timeout=CLIENT_TIMEOUT_S)
    assert result.end is StreamEnd.RST
    assert not result.ok and not result.matches()
    assert "RST" in result.describe()


def test_corrupted_echo_reports_first_differing_offset() -> None:
    def corrupt_byte_1000(conn: socket.socket) -> None:
        data = bytearray(recv_until_eof(conn))
        data[1000] ^= 0xFF
        conn.sendall(data)

    with peer("tcp", corrupt_byte_1000) as running:
        result = echo_roundtrip(running.address, ALL_BYTES * 8, timeout=CLIENT_TIMEOUT_S)
    assert result.first_difference() == 1000
    assert result.end is StreamEnd.FIN and not result.ok
    assert "offset 1000" in result.describe()


def test_truncated_echo_reports_shorter_length_as_difference() -> None:
    with peer("tcp", lambda conn: conn.sendall(recv_until_eof(conn)[:300])) as running:
        result = echo_roundtrip(running.address, ALL_BYTES * 2, timeout=CLIENT_TIMEOUT_S)
    assert result.first_difference() == 300 and len(result.received) == 300


def test_silent_peer_times_out_within_bound() -> None:
    release = threading.Event()
    with peer("tcp", lambda conn: release.wait(PEER_TIMEOUT_S), release) as running:
        result = echo_roundtrip(running.address, b"anyone?", timeout=SILENT_PEER_TIMEOUT_S)
    assert result.end is StreamEnd.TIMEOUT and result.received == b""
    assert result.elapsed_s < 10 * SILENT_PEER_TIMEOUT_S + 5  # "did not hang", not a benchmark


# --------------------------------------------------------------------------- addresses, connect


def closed_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nobody listens once the socket is closed


def test_refused_connection_is_a_one_line_connect_error() -> None:
    with pytest.raises(ConnectError, match="connection refused") as caught:
        echo_roundtrip(f"127.0.0.1:{closed_tcp_port()}", b"x", timeout=CLIENT_TIMEOUT_S)
    assert "\n" not in str(caught.value)


def test_missing_unix_socket_is_a_connect_error() -> None:
    with tempfile.TemporaryDirectory(prefix="ss-") as directory:
        with pytest.raises(ConnectError, match="no socket file"):
            fetch(f"unix:{directory}/absent.sock", "/", timeout=CLIENT_TIMEOUT_S)


@pytest.mark.parametrize(
    "text",
    [
        "nonsense",
        "tcp:localhost:80",          # names are not resolved: IP literals only
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        "unix:",
        "unix:/tmp/" + "x" * 120,    # longer than sun_path
        "10.1.2.3:80",               # not loopback: refused before any packet is sent
        "[2001:db8::1]:80",
    ],
)
def test_bad_addresses_raise_address_error(text: str) -> None:
    with pytest.raises(AddressError) as caught:
        echo_roundtrip(text, b"x", timeout=CLIENT_TIMEOUT_S)
    assert "\n" not in str(caught.value)


def test_bad_arguments_raise_usage_error() -> None:
    with pytest.raises(UsageError):
        echo_roundtrip("127.0.0.1:9", b"x", timeout=1, chunk=0)
    with pytest.raises(UsageError):
        fetch("127.0.0.1:9", "/with space", timeout=1)
    with pytest.raises(UsageError):
        ping_pong("127.0.0.1:9", 0, 1, timeout=1)


# --------------------------------------------------------------------------- http


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fetch_with_content_length(transport: str) -> None:
    body = ALL_BYTES * 3
    with peer(transport, http_peer(ok_head(len(body)), body)) as running:
        response = fetch(running.address, "/f", timeout=CLIENT_TIMEOUT_S)
    assert (response.status, response.reason, response.version) == (200, "OK", "HTTP/1.0")
    assert response.complete and response.end is StreamEnd.FIN
    assert response.body_length == len(body) and response.digest == bytes_digest(body)
    assert response.body_first_bytes == body and response.body_last_bytes == body
    assert response.problem(expect_length=len(body), expect_digest=bytes_digest(body)) is None


def test_fetch_sends_an_http10_get_with_host() -> None:
    requests: list[bytes] = []

    def record(conn: socket.socket) -> None:
        requests.append(read_request_head(conn))
        conn.sendall(ok_head(0))

    with peer("tcp", record) as running:
        fetch(running.address, "/a/b?c=d", timeout=CLIENT_TIMEOUT_S)
        fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S, host="example.test")
    host = f"127.0.0.1:{running.address.port}".encode()
    assert requests == [b"GET /a/b?c=d HTTP/1.0\r\nHost: " + host + b"\r\n\r\n",
                        b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n"]


def test_body_without_content_length_ends_at_fin() -> None:
    with peer("unix", http_peer(ok_head(None), b"until the end")) as running:
        response = fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S)
    assert response.expected_length is None and response.complete
    assert response.body_first_bytes == b"until the end"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_short_body_is_a_failure_with_counts(transport: str) -> None:
    with peer(transport, http_peer(ok_head(1000), b"z" * 400)) as running:
        response = fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S)
        with pytest.raises(PeerError, match="received 400 of 1000 bytes, stream ended by FIN"):
            download(running.address, "/", expect_length=None, expect_digest=None,
                     timeout=CLIENT_TIMEOUT_S)
    assert not response.complete and response.body_length == 400
    assert response.end is StreamEnd.FIN


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reset_mid_body_is_rst_not_success(transport: str) -> None:
    with peer(transport, http_peer(ok_head(100_000), b"r" * 5000, then="reset")) as running:
        response = fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S)
    assert response.end is StreamEnd.RST
    assert not response.complete and response.body_length <= 5000
    assert "ended by RST" in (response.problem() or "")


def test_extra_bytes_after_content_length_are_counted() -> None:
    with peer("tcp", http_peer(ok_head(10), b"0123456789EXTRA")) as running:
        response = fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S)
    assert response.body_length == 10 and response.excess_bytes == 5
    assert response.body_last_bytes == b"0123456789"
    assert response.problem() == "5 bytes after the 10-byte body"


def test_not_found_is_returned_by_fetch_and_refused_by_download() -> None:
    head = b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\n"
    with peer("tcp", http_peer(head, b"not found")) as running:
        response = fetch(running.address, "/missing", timeout=CLIENT_TIMEOUT_S)
        with pytest.raises(PeerError, match="status 404 Not Found, expected 200"):
            download(running.address, "/missing", expect_length=None, expect_digest=None,
                     timeout=CLIENT_TIMEOUT_S)
    assert response.status == 404 and response.complete


def test_download_refuses_wrong_length_and_digest() -> None:
    with peer("tcp", http_peer(ok_head(4), b"abcd")) as running:
        with pytest.raises(PeerError, match="body is 4 bytes, expected 5"):
            download(running.address, "/", expect_length=5, expect_digest=None,
                     timeout=CLIENT_TIMEOUT_S)
        with pytest.raises(PeerError, match="body digest"):
            download(running.address, "/", expect_length=4, expect_digest=bytes_digest(b"abce"),
                     timeout=CLIENT_TIMEOUT_S)
        good = download(running.address, "/", expect_length=4,
                        expect_digest=bytes_digest(b"abcd"), timeout=CLIENT_TIMEOUT_S)
    assert good.body_length == 4


def test_peer_that_never_answers_times_out_within_bound() -> None:
    release = threading.Event()
    with peer("tcp", http_peer(b"", then="hang", release=release), release) as running:
        with pytest.raises(PeerError, match="ended by timeout after 0 bytes") as caught:
            fetch(running.address, "/", timeout=SILENT_PEER_TIMEOUT_S)
    assert "\n" not in str(caught.value)


def test_overall_deadline_bounds_a_dripping_peer() -> None:
    release = threading.Event()

    def drip(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(ok_head(1000))
        for _ in range(200):  # one byte per 50 ms, bounded, until released
            if release.wait(0.05):
                return
            conn.sendall(b".")

    with peer("tcp", drip, release) as running:
        response = fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S, deadline_s=0.5)
    assert response.end is StreamEnd.TIMEOUT and not response.complete


def test_garbage_and_early_close_are_malformed() -> None:
    with peer("tcp", http_peer(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")) as running:
        with pytest.raises(MalformedResponse, match="bad status line"):
            fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S)
    with peer("tcp", http_peer(b"")) as running:
        with pytest.raises(MalformedResponse, match="peer closed after 0 bytes"):
            fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S)


def test_multi_mib_body_streams_with_bounded_memory() -> None:
    block = bytes(i * 7 % 256 for i in range(1 << 20))
    blocks = 32
    expected = StreamDigest()
    for _ in range(blocks):
        expected.update(block)

    def big_body(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(ok_head(len(block) * blocks))
        for _ in range(blocks):
            conn.sendall(block)

    received = [0]
    with peer("unix", big_body) as running:
        tracemalloc.start()
        try:
            response = fetch(running.address, "/big", timeout=CLIENT_TIMEOUT_S,
                             sink=lambda chunk: received.__setitem__(0, received[0] + len(chunk)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.complete and response.digest == expected.hexdigest()
    assert received[0] == response.body_length == 32 << 20
    assert response.body_last_bytes == block[-4096:]
    assert peak < 8 << 20, f"peak {peak} bytes while streaming a 32 MiB body"


def test_sink_receives_the_body_exactly(tmp_path: Path) -> None:
    body = ALL_BYTES * 5000
    with peer("tcp6", http_peer(ok_head(len(body)), body)) as running:
        with open(tmp_path / "out", "wb") as output:
            fetch(running.address, "/", timeout=CLIENT_TIMEOUT_S, sink=output.write)
    assert (tmp_path / "out").read_bytes() == body


# --------------------------------------------------------------------------- upload, ping


@pytest.fixture
def five_mib_file(tmp_path: Path) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(os.urandom(5 << 20))
    return path


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_upload_to_counting_sink(transport: str, five_mib_file: Path) -> None:
    counts: list[int] = []

    def counting_sink(conn: socket.socket) -> None:
        total = 0
        while chunk := conn.recv(1 << 16):
            total += len(chunk)
        counts.append(total)

    with peer(transport, counting_sink) as running:
        result = upload_file(running.address, five_mib_file, timeout=CLIENT_TIMEOUT_S)
    assert result.sent == result.size == 5 << 20 and result.send_error is None
    assert result.received_length == 0 and result.end is StreamEnd.FIN
    assert counts == [5 << 20]


def test_upload_to_echo_returns_the_file_digest(
    five_mib_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrink the per-call cap so the sendfile() loop must make many calls, as a
    # >2 GiB file would with the real 0x7ffff000 cap.
    monkeypatch.setattr(client, "SENDFILE_MAX_BYTES", 100_003)
    with peer("unix", echo_streaming) as running:
        result = upload_file(running.address, five_mib_file, timeout=CLIENT_TIMEOUT_S)
    assert result.received_length == result.size
    assert result.received_digest == file_digest(five_mib_file), result.describe()


def test_file_digest_equals_streamed_digest(five_mib_file: Path) -> None:
    data = five_mib_file.read_bytes()
    assert file_digest(five_mib_file) == bytes_digest(data)
    assert file_digest(five_mib_file).startswith("xxh3_64:")
    assert file_digest(five_mib_file, "crc32").startswith("crc32:")
    assert file_digest(five_mib_file) != bytes_digest(data[:-1])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ping_pong_returns_one_time_per_round(transport: str) -> None:
    with peer(transport, echo_streaming) as running:
        times = ping_pong(running.address, 100, 20, timeout=CLIENT_TIMEOUT_S)
    assert len(times) == 20 and all(t > 0 for t in times)


def test_ping_pong_detects_a_wrong_echo() -> None:
    def corrupt_sixth_byte(conn: socket.socket) -> None:
        # The ping message is bytes 33 + i % 89: offset 5 holds "&" (38).
        while chunk := conn.recv(65536):
            conn.sendall(chunk.replace(b"&", b"?"))

    with peer("tcp", corrupt_sixth_byte) as running:
        with pytest.raises(PeerError, match="round 0: echo differs at offset 5"):
            ping_pong(running.address, 64, 3, timeout=CLIENT_TIMEOUT_S)


# --------------------------------------------------------------------------- command line


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run the client command in its own process group, killed on any way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sockspec.reference.client", *args],
        cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=60)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(PEER_TIMEOUT_S)


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], status: int) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == status, stderr
    assert stderr.startswith("client: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr


def test_cli_echo_prints_the_echo() -> None:
    with peer("tcp", echo_streaming) as running:
        result = run_cli("echo", str(running.address), "--data", "héllo")
        from_stdin = run_cli("echo", running.address.hostport, stdin=ALL_BYTES)
    assert result.returncode == 0 and result.stdout == "héllo".encode()
    assert from_stdin.returncode == 0 and from_stdin.stdout == ALL_BYTES


def test_cli_get_writes_body_and_summary(tmp_path: Path) -> None:
    body = ALL_BYTES * 10
    output = tmp_path / "body"
    with peer("unix", http_peer(ok_head(len(body)), body)) as running:
        result = run_cli("get", str(running.address), "/file", "-o", str(output),
                         "--expect-length", str(len(body)))
        to_stdout = run_cli("get", str(running.address), "/file")
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == body and to_stdout.stdout == body
    assert bytes_digest(body).encode() in result.stderr


def test_cli_get_short_body_fails_with_one_line() -> None:
    with peer("tcp", http_peer(ok_head(100), b"x" * 10)) as running:
        result = run_cli("get", str(running.address), "/")
    assert "received 10 of 100 bytes" in assert_one_line_error(result, 1)


def test_cli_upload_and_ping(five_mib_file: Path) -> None:
    with peer("tcp", echo_streaming) as running:
        upload = run_cli("upload", str(running.address), str(five_mib_file), "--expect-echo")
        ping = run_cli("ping", str(running.address), "--size", "32", "--count", "50")
    assert upload.returncode == 0, upload.stderr
    assert f"sent {5 << 20} of {5 << 20} bytes" in upload.stdout.decode()
    assert ping.returncode == 0, ping.stderr
    assert "50 round trips of 32 bytes: p50" in ping.stdout.decode()


def test_cli_refused_is_exit_1_with_one_line() -> None:
    result = run_cli("get", f"127.0.0.1:{closed_tcp_port()}", "/")
    assert "connection refused" in assert_one_line_error(result, 1)


@pytest.mark.parametrize(
    "args",
    [
        ("get", "not-an-address", "/"),
        ("echo", "10.0.0.1:7", "--data", "x"),
        ("get",),
        ("frobnicate", "127.0.0.1:7"),
        ("ping", "127.0.0.1:7", "--count", "0"),
        ("echo", "127.0.0.1:7", "--file", "/nonexistent/file"),
    ],
)
def test_cli_usage_and_address_errors_are_exit_2_with_one_line(args: tuple[str, ...]) -> None:
    assert_one_line_error(run_cli(*args), 2)
