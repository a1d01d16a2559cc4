"""The reference server as a black box: subprocess, plain sockets, TCP/TCP6/Unix.

Every server is started with start_new_session=True and killed by process
group in a finally (tests/reference_support.py); every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from reference_support import (
    TRANSPORTS,
    RunningServer,
    fd_count,
    free_tcp_port,
    process_state,
    run_to_exit,
    running_server,
    server_args,
    short_socket_dir,
    spawn_server,
    stop_server,
    thread_count,
    wait_for,
    wait_for_exit,
    wait_until_accepting,
)

from sockspec.errors import ConnectError
from sockspec.reference.server import ReferenceServer
from sockspec.transport import (
    StreamEnd,
    TcpAddress,
    UnixAddress,
    abort,
    connect,
    half_close,
    read_until_end,
    recv_exactly,
)

IO_TIMEOUT = 20.0  # per socket operation; only "did not hang" bounds
SETTLE_TIMEOUT = 15.0  # for the server's fds/threads to return to baseline
FILE_SIZES = (0, 1, 4095, 4097, 100003)
BIG_FILE_SIZE = 4 * 1024 * 1024 + 3
SECRET = b"TOP-SECRET-outside-the-root"


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def dial(server: RunningServer, *, nodelay: bool = False) -> socket.socket:
    return connect(server.address, IO_TIMEOUT, nodelay=nodelay)


def dial_retrying(server: RunningServer) -> socket.socket:
    """Connect, retrying (bounded) while a Unix accept queue is momentarily full (EAGAIN)."""
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        try:
            return dial(server)
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def echo_through(sock: socket.socket, data: bytes, piece: int = 65536) -> tuple[bytes, StreamEnd]:
    """Send ``data`` in ``piece``-byte sends then half-close, from a thread, while reading it all.

    Sending and reading at once: an echo of more than the socket buffers hold
    would otherwise deadlock both sides.
    """
    errors: list[BaseException] = []

    def send_then_half_close() -> None:
        try:
            for start in range(0, len(data), piece):
                sock.sendall(data[start : start + piece])
            half_close(sock)
        except BaseException as exc:  # surfaced by the main thread below
            errors.append(exc)

    sender = threading.Thread(target=send_then_half_close, daemon=True)
    sender.start()
    received, end = read_until_end(sock, IO_TIMEOUT, limit=len(data) + 1)
    sender.join(IO_TIMEOUT)
    assert not sender.is_alive(), "sender thread hung"
    assert not errors, errors
    return received, end


def first_difference(a: bytes, b: bytes) -> int | None:
    for offset, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return offset
    return None if len(a) == len(b) else min(len(a), len(b))


def assert_same_bytes(received: bytes, expected: bytes) -> None:
    diff = first_difference(received, expected)
    assert diff is None, (
        f"received {len(received)} bytes, expected {len(expected)}; first difference at {diff}"
    )


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", params=TRANSPORTS)
def echo_server(request) -> Iterator[RunningServer]:
    with running_server("echo", request.param) as server:
        yield server


@pytest.fixture(scope="module")
def web_tree(tmp_path_factory) -> dict[str, object]:
    """base/secret (outside), base/root/{f<size>, big.bin, sub/, link-out -> ../secret}."""
    base = tmp_path_factory.mktemp("web")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (base / "secret").write_bytes(SECRET)
    (base / "x").write_bytes(SECRET)
    os.symlink(base / "secret", root / "link-out")
    files = {}
    for size in FILE_SIZES:
        files[f"f{size}"] = payload(size, seed=size)
    files["big.bin"] = payload(BIG_FILE_SIZE, seed=1)
    files["sub/inner.txt"] = b"inner\n"
    for name, content in files.items():
        (root / name).write_bytes(content)
    return {"root": str(root), "files": files}


@pytest.fixture(scope="module", params=TRANSPORTS)
def web_server(request, web_tree) -> Iterator[RunningServer]:
    with running_server("http", request.param, root=web_tree["root"]) as server:
        yield server


def http_exchange(server: RunningServer, raw_request: bytes) -> tuple[int, dict, bytes, StreamEnd]:
    """Send raw bytes, read to the end; return (status, headers, body, how it ended)."""
    with dial(server) as sock:
        sock.sendall(raw_request)
        data, end = read_until_end(sock, IO_TIMEOUT)
    return (*parse_response(data), end)


def parse_response(data: bytes) -> tuple[int, dict, bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, _reason = lines[0].split(" ", 2)
    assert version == "HTTP/1.0"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    if "Content-Length" in headers:
        assert int(headers["Content-Length"]) == len(body), "Content-Length disagrees with body"
    return int(status), headers, body


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.0\r\n\r\n".encode()


# ---------------------------------------------------------------------- echo


def test_echo_fragmented_ping_pong(echo_server) -> None:
    """Pieces of 1..64 bytes, each echoed before the next is sent."""
    data = payload(64 * 65 // 2, seed=7)
    with dial(echo_server, nodelay=True) as sock:
        offset = 0
        for size in range(1, 65):
            piece = data[offset : offset + size]
            sock.sendall(piece)
            assert recv_exactly(sock, size) == piece
            offset += size
        half_close(sock)
        rest, end = read_until_end(sock, IO_TIMEOUT)
    assert (rest, end) == (b"", StreamEnd.FIN)


@pytest.mark.parametrize("piece", [1, 1000, 65537])
def test_echo_fragmented_stream(echo_server, piece: int) -> None:
    data = payload(200_000 if piece > 1 else 5_000, seed=piece)
    with dial(echo_server, nodelay=True) as sock:
        received, end = echo_through(sock, data, piece)
    assert end == StreamEnd.FIN
    assert_same_bytes(received, data)


def test_echo_half_close_with_data_pending(echo_server) -> None:
    """Client sends 3 MB and its FIN at once: all 3 MB come back, then FIN, not RST."""
    data = payload(3 * 1024 * 1024, seed=3)
    with dial(echo_server) as sock:
        received, end = echo_through(sock, data)
    assert end == StreamEnd.FIN, f"stream ended with {end.value} after {len(received)} bytes"
    assert_same_bytes(received, data)


def test_echo_every_byte_value(echo_server) -> None:
    data = bytes(range(256)) * 512 + bytes(range(255, -1, -1))
    with dial(echo_server) as sock:
        received, end = echo_through(sock, data, piece=4099)
    assert end == StreamEnd.FIN
    assert_same_bytes(received, data)


def test_echo_immediate_half_close_gets_fin(echo_server) -> None:
    with dial(echo_server) as sock:
        half_close(sock)
        assert read_until_end(sock, IO_TIMEOUT) == (b"", StreamEnd.FIN)


def test_echo_thousand_clients_at_once(echo_server) -> None:
    clients: list[socket.socket] = []
    try:
        for _ in range(1000):
            clients.append(dial(echo_server))
        for index, sock in enumerate(clients):
            sock.sendall(b"client %06d\n" % index)
        for index, sock in enumerate(clients):
            assert recv_exactly(sock, 14) == b"client %06d\n" % index
        # Every connection was answered and is still open: 1000 threads serve at once.
        assert thread_count(echo_server.pid) >= 1001
        for index, sock in enumerate(clients):
            sock.sendall(b"again  %06d\n" % index)
            half_close(sock)
        for index, sock in enumerate(clients):
            assert read_until_end(sock, IO_TIMEOUT) == (b"again  %06d\n" % index, StreamEnd.FIN)
    finally:
        for sock in clients:
            sock.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo_idle_timeout_frees_the_thread(transport: str) -> None:
    with running_server("echo", transport, extra=["--idle-timeout", "1"]) as server:
        with dial(server) as sock:
            sock.sendall(b"hi")
            assert recv_exactly(sock, 2) == b"hi"
            # Ours is the only connection left once the readiness probe's ends.
            assert wait_for(lambda: thread_count(server.pid) == 2, SETTLE_TIMEOUT)
            # Then silence: the server must give up on us and close.
            data, end = read_until_end(sock, IO_TIMEOUT)
            assert (data, end) == (b"", StreamEnd.FIN)
        assert wait_for(lambda: thread_count(server.pid) == 1, SETTLE_TIMEOUT)
    assert server.stderr == b"", server.stderr.decode()


# ---------------------------------------------------------------------- http


@pytest.mark.parametrize("name", [f"f{size}" for size in FILE_SIZES] + ["big.bin"])
def test_http_files_arrive_exact(web_server, web_tree, name: str) -> None:
    status, headers, body, end = http_exchange(web_server, get(f"/{name}"))
    assert status == 200
    assert headers == {"Content-Length": str(len(web_tree["files"][name]))}
    assert_same_bytes(body, web_tree["files"][name])
    assert end == StreamEnd.FIN


def test_http_response_head_exact(web_server) -> None:
    with dial(web_server) as sock:
        sock.sendall(b"GET /f1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, end = read_until_end(sock, IO_TIMEOUT)
    assert data == b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n" + payload(1, seed=1)
    assert end == StreamEnd.FIN


def test_http_request_in_pieces(web_server, web_tree) -> None:
    """One byte per send; the server must not answer before the blank line."""
    request = b"GET /f4097 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"
    with dial(web_server, nodelay=True) as sock:
        for index in range(len(request)):
            sock.sendall(request[index : index + 1])
            if index < len(request) - 1:
                sock.settimeout(0.01)
                with pytest.raises(TimeoutError):
                    sock.recv(1)  # nothing may arrive for an incomplete request
        sock.settimeout(IO_TIMEOUT)
        data, end = read_until_end(sock, IO_TIMEOUT)
    status, _, body = parse_response(data)
    assert (status, end) == (200, StreamEnd.FIN)
    assert_same_bytes(body, web_tree["files"]["f4097"])


def test_http_bare_lf_request(web_server, web_tree) -> None:
    status, _, body, _ = http_exchange(web_server, b"GET /f4095 HTTP/1.0\n\n")
    assert status == 200
    assert body == web_tree["files"]["f4095"]


def test_http_pipelined_request_gets_full_body_and_fin(web_server, web_tree) -> None:
    """A second request sent with the first stays unread; it must not become an RST."""
    with dial(web_server) as sock:
        sock.sendall(get("/big.bin") + get("/f1") + b"X" * 100_000)
        data, end = read_until_end(sock, IO_TIMEOUT)
    status, _, body = parse_response(data)
    assert status == 200
    assert_same_bytes(body, web_tree["files"]["big.bin"])
    assert end == StreamEnd.FIN, f"ended with {end.value} after {len(body)} body bytes"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /f1\r\n\r\n", 400),
        (b"GET /f1 HTTP/2.0\r\n\r\n", 505),
        (b"POST /f1 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", 405),
        (b"GET /missing HTTP/1.0\r\n\r\n", 404),
        (b"GET /sub HTTP/1.0\r\n\r\n", 404),
        (b"GET / HTTP/1.0\r\n\r\n", 404),
        (b"GET /../secret HTTP/1.0\r\n\r\n", 403),
        (b"GET /f1%00 HTTP/1.0\r\n\r\n", 400),
        (b"GET /f1 HTTP/1.0\r\nX: " + b"v" * 9000 + b"\r\n\r\n", 431),
    ],
)
def test_http_error_statuses(web_server, raw: bytes, status: int) -> None:
    got, headers, body, end = http_exchange(web_server, raw)
    assert got == status
    assert headers["Connection"] == "close"
    assert body.startswith(str(status).encode())
    assert end == StreamEnd.FIN


def test_http_truncated_request_is_400(web_server) -> None:
    with dial(web_server) as sock:
        sock.sendall(b"GET /f1 HTTP/1.0\r\nHost: x\r\n")
        half_close(sock)
        data, end = read_until_end(sock, IO_TIMEOUT)
    assert parse_response(data)[0] == 400
    assert end == StreamEnd.FIN


def test_http_connect_and_close_gets_nothing(web_server) -> None:
    with dial(web_server) as sock:
        half_close(sock)
        assert read_until_end(sock, IO_TIMEOUT) == (b"", StreamEnd.FIN)


@pytest.mark.parametrize(
    "target",
    [
        "/../x",
        "/%2e%2e/x",
        "/..%2fx",
        "/sub/../../x",
        "/../secret",
        "/%2e%2e/secret",
        "/..%2fsecret",
        "/sub/../../secret",
        "/sub/%2E%2E/%2E%2E/secret",
        "/%2e%2e%2fsecret",
        "/link-out",
    ],
)
def test_http_path_traversal_refused(web_server, target: str) -> None:
    status, _, body, _ = http_exchange(web_server, get(target))
    assert status == 403
    assert SECRET not in body


def test_http_sparse_file_over_2gib_delivered_whole(web_server, web_tree) -> None:
    """0x7ffff000 + 1 MiB + 17 bytes: sendfile() must be called in a loop (MAX_RW_COUNT)."""
    size = 0x7FFFF000 + 1024 * 1024 + 17
    marker = b"<<end-of-the-sparse-file>>"
    path = os.path.join(web_tree["root"], "sparse.bin")
    with open(path, "wb") as f:
        f.truncate(size - len(marker))
        f.seek(size - len(marker))
        f.write(marker)
    try:
        with dial(web_server) as sock:
            sock.sendall(get("/sparse.bin"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)
                assert chunk, f"EOF inside the response head {head!r}"
                head += chunk
            assert head == f"HTTP/1.0 200 OK\r\nContent-Length: {size}\r\n\r\n".encode()
            received, tail, end = count_stream(sock, size, marker_size=len(marker))
    finally:
        os.unlink(path)
    assert received == size, f"got {received} of {size} bytes"
    assert tail == marker
    assert end == StreamEnd.FIN


def count_stream(
    sock: socket.socket, size: int, marker_size: int
) -> tuple[int, bytes, StreamEnd]:
    """Read to EOF into one reusable buffer; check the zeros, keep the last bytes."""
    buffer = bytearray(1024 * 1024)
    zeros = bytes(len(buffer))
    view = memoryview(buffer)
    zero_end = size - marker_size
    received = 0
    tail = b""
    while True:
        try:
            count = sock.recv_into(buffer)
        except ConnectionResetError:
            return received, tail, StreamEnd.RST
        if count == 0:
            return received, tail, StreamEnd.FIN
        zero_count = max(0, min(count, zero_end - received))
        assert view[:zero_count] == zeros[:zero_count], f"non-zero byte near {received}"
        tail = (tail + bytes(view[max(0, count - marker_size) : count]))[-marker_size:]
        received += count


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_http_aborted_downloads_leave_no_trace(transport: str, web_tree) -> None:
    """Clients that reset or vanish mid-transfer: server alive, fds and threads back to baseline."""
    with running_server("http", transport, root=web_tree["root"]) as server:
        status, _, body, _ = http_exchange(server, get("/f4097"))
        assert status == 200
        assert wait_for(lambda: thread_count(server.pid) == 1, SETTLE_TIMEOUT)
        baseline_fds = fd_count(server.pid)
        for index in range(20):
            sock = dial(server)
            sock.sendall(get("/big.bin"))
            recv_exactly(sock, 65536)
            if index % 2:
                abort(sock)  # RST (SO_LINGER 0; a plain close for AF_UNIX)
            else:
                sock.close()  # vanish: close with unread data
        status, _, body, _ = http_exchange(server, get("/big.bin"))
        assert status == 200
        assert_same_bytes(body, web_tree["files"]["big.bin"])
        assert wait_for(lambda: thread_count(server.pid) == 1, SETTLE_TIMEOUT), (
            f"threads: {thread_count(server.pid)}"
        )
        assert wait_for(lambda: fd_count(server.pid) == baseline_fds, SETTLE_TIMEOUT), (
            f"fds: {fd_count(server.pid)} vs baseline {baseline_fds}"
        )
        assert server.proc.poll() is None
    assert server.stderr == b"", server.stderr.decode()


def test_http_idle_client_gets_408_and_frees_thread(web_tree) -> None:
    with running_server("http", "tcp", root=web_tree["root"], extra=["--idle-timeout", "1"]) as server:
        with dial(server) as sock:
            sock.sendall(b"GET /f1 HTTP/1.0\r\n")  # and never the blank line
            data, end = read_until_end(sock, IO_TIMEOUT)
        assert parse_response(data)[0] == 408
        assert end == StreamEnd.FIN
        assert wait_for(lambda: thread_count(server.pid) == 1, SETTLE_TIMEOUT)


# ------------------------------------------------------- listening, restart


@pytest.mark.parametrize("transport", ["tcp", "tcp6"])
def test_restart_on_same_port_after_kill9_with_clients(transport: str) -> None:
    """SO_REUSEADDR: the old connections (FIN_WAIT2 now) must not block the new bind."""
    host = "127.0.0.1" if transport == "tcp" else "::1"
    address = TcpAddress(host, free_tcp_port(host))
    clients: list[socket.socket] = []
    first = spawn_server(server_args("echo", address))
    try:
        wait_until_accepting(first, address)
        for index in range(5):
            sock = connect(address, IO_TIMEOUT)
            clients.append(sock)
            sock.sendall(b"%d" % index)
            assert recv_exactly(sock, 1) == b"%d" % index
    finally:
        stop_server(first)  # kill -9 of the whole group
    second = spawn_server(server_args("echo", address))
    try:
        wait_until_accepting(second, address)
        with connect(address, IO_TIMEOUT) as sock:
            sock.sendall(b"back")
            assert recv_exactly(sock, 4) == b"back"
    finally:
        for sock in clients:
            sock.close()
        stop_server(second)


@pytest.mark.parametrize("backlog", [0, 2, 5])
def test_backlog_reaches_listen(backlog: int) -> None:
    """With the server stopped, a Unix listener queues exactly backlog + 1 connections.

    (Linux: unix_recvq_full() refuses once the queue holds more than the
    backlog; a non-blocking connect then fails with EAGAIN at once.)
    """
    with running_server("echo", "unix", extra=["--backlog", str(backlog)]) as server:
        # With backlog 0 the readiness probe may still fill the queue: retry on EAGAIN.
        with dial_retrying(server) as sock:  # accepted, so is everything queued before it
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
        queued: list[socket.socket] = []
        os.kill(server.pid, signal.SIGSTOP)
        try:
            assert wait_for(lambda: process_state(server.pid).startswith("T"), SETTLE_TIMEOUT)
            for _ in range(backlog + 10):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    sock.connect(server.address.path)
                except BlockingIOError:
                    sock.close()
                    break
                queued.append(sock)
            assert len(queued) == backlog + 1
        finally:
            os.kill(server.pid, signal.SIGCONT)
        for index, sock in enumerate(queued):
            sock.settimeout(IO_TIMEOUT)
            sock.sendall(b"%d" % index)
            assert recv_exactly(sock, len(b"%d" % index)) == b"%d" % index
            sock.close()


@pytest.mark.parametrize("transport", ["tcp", "tcp6"])
def test_backlog_option_accepted_on_tcp(transport: str) -> None:
    with running_server("echo", transport, extra=["--backlog", "1"]) as server:
        for index in range(20):
            with dial(server) as sock:
                sock.sendall(b"%02d" % index)
                assert recv_exactly(sock, 2) == b"%02d" % index


# ----------------------------------------------------------------- Unix paths


def test_unix_path_of_108_bytes_refused() -> None:
    with short_socket_dir() as directory:
        path = os.path.join(directory, "s" * (108 - len(directory) - 1))
        assert len(os.fsencode(path)) == 108
        result = run_to_exit(["--profile", "echo", "-u", path])
        assert result.returncode == 2
        assert_one_line(result.stderr)
        assert b"107" in result.stderr and b"108" in result.stderr
        assert not os.path.exists(path)


def test_unix_path_of_107_bytes_works() -> None:
    with short_socket_dir() as directory:
        path = os.path.join(directory, "s" * (107 - len(directory) - 1))
        proc = spawn_server(["--profile", "echo", "-u", path])
        try:
            wait_until_accepting(proc, UnixAddress(path))
        finally:
            stop_server(proc)


def test_unix_stale_socket_replaced() -> None:
    with short_socket_dir() as directory:
        path = os.path.join(directory, "stale.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()  # the file stays; nobody listens: connect() gives ECONNREFUSED
        proc = spawn_server(["--profile", "echo", "-u", path])
        try:
            wait_until_accepting(proc, UnixAddress(path))
            with connect(UnixAddress(path), IO_TIMEOUT) as sock:
                sock.sendall(b"fresh")
                assert recv_exactly(sock, 5) == b"fresh"
        finally:
            stop_server(proc)


def test_unix_regular_file_left_alone() -> None:
    with short_socket_dir() as directory:
        path = os.path.join(directory, "data.txt")
        with open(path, "wb") as f:
            f.write(b"precious")
        result = run_to_exit(["--profile", "echo", "-u", path])
        assert result.returncode == 1
        assert_one_line(result.stderr)
        assert b"regular file" in result.stderr
        with open(path, "rb") as f:
            assert f.read() == b"precious"


def test_unix_live_path_refused() -> None:
    with running_server("echo", "unix") as live:
        result = run_to_exit(["--profile", "echo", "-u", live.address.path])
        assert result.returncode == 1
        assert_one_line(result.stderr)
        assert b"live server" in result.stderr
        with dial(live) as sock:  # the first server still owns and serves the path
            sock.sendall(b"still")
            assert recv_exactly(sock, 5) == b"still"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_signal_cleans_up_and_dies_of_it(transport: str, signum: int) -> None:
    with running_server("echo", transport) as server:
        with dial(server) as sock:  # a connection thread is busy in recv()
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
            os.kill(server.pid, signum)
            assert wait_for_exit(server.proc) == -signum
        _, err = server.proc.communicate(timeout=5)
        assert err == b""
        if isinstance(server.address, UnixAddress):
            assert not os.path.lexists(server.address.path)


def test_unix_socket_file_of_a_successor_not_removed() -> None:
    """On exit the server unlinks the path only if it is still the inode it created."""
    with running_server("echo", "unix") as server:
        path = server.address.path
        os.unlink(path)
        with open(path, "wb") as f:
            f.write(b"someone else's")
        os.kill(server.pid, signal.SIGTERM)
        assert wait_for_exit(server.proc) == -signal.SIGTERM
        with open(path, "rb") as f:
            assert f.read() == b"someone else's"


# ------------------------------------------------------------------------ CLI


def assert_one_line(stderr: bytes) -> None:
    text = stderr.decode()
    assert b"Traceback" not in stderr, text
    assert text.endswith("\n") and text.count("\n") == 1, f"expected one line, got {text!r}"
    assert text.startswith("server: "), text


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--profile", "echo"],
        ["--profile", "gopher", "-p", "{port}"],
        ["--profile", "echo", "-p", "{port}", "-u", "/tmp/ss-never.sock"],
        ["--profile", "http", "-p", "{port}"],
        ["--profile", "http", "-p", "{port}", "-r", "/nonexistent/ss-root"],
        ["--profile", "echo", "-p", "abc"],
        ["--profile", "echo", "-p", "70000"],
        ["--profile", "echo", "-p", "0"],
        ["--profile", "echo", "-p", "{port}", "--backlog", "-1"],
        ["--profile", "echo", "-p", "{port}", "--backlog", "many"],
        ["--profile", "echo", "-p", "{port}", "-h", "localhost"],
        ["--profile", "echo", "-p", "{port}", "-h", "192.0.2.1"],
        ["--profile", "echo", "-u", "/tmp/ss-never.sock", "-h", "::1"],
        ["--profile", "echo", "-u", ""],
        ["--profile", "echo", "-p", "{port}", "--idle-timeout", "0"],
        ["--profile", "echo", "-p", "{port}", "--no-such-option"],
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str]) -> None:
    port = str(free_tcp_port("127.0.0.1"))
    result = run_to_exit([arg.replace("{port}", port) for arg in args])
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    assert_one_line(result.stderr)
    assert not os.path.exists("/tmp/ss-never.sock")


def test_help_exits_0() -> None:
    result = run_to_exit(["--help"])
    assert result.returncode == 0
    assert b"--profile" in result.stdout and b"--backlog" in result.stdout


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_cannot_listen_exits_1(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as occupant:
        occupant.bind((host, 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        result = run_to_exit(["--profile", "echo", "-p", str(port), "-h", host])
    assert result.returncode == 1
    assert_one_line(result.stderr)
    assert b"cannot listen" in result.stderr and b"EADDRINUSE" in result.stderr


def test_cannot_listen_unix_missing_directory_exits_1() -> None:
    with short_socket_dir() as directory:
        result = run_to_exit(["--profile", "echo", "-u", os.path.join(directory, "no/s.sock")])
    assert result.returncode == 1
    assert_one_line(result.stderr)
    assert b"ENOENT" in result.stderr


# ------------------------------------------------------------- in-process


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_in_process_reference_server(transport: str, web_tree) -> None:
    with short_socket_dir() as directory:
        requested = (
            TcpAddress("127.0.0.1", 0)
            if transport == "tcp"
            else UnixAddress(os.path.join(directory, "in.sock"))
        )
        with ReferenceServer(requested, "http", web_tree["root"]) as address:
            with connect(address, IO_TIMEOUT) as sock:
                sock.sendall(get("/f100003"))
                data, end = read_until_end(sock, IO_TIMEOUT)
            assert parse_response(data)[2] == web_tree["files"]["f100003"]
            assert end == StreamEnd.FIN
        if isinstance(address, UnixAddress):
            assert not os.path.lexists(address.path)
        with pytest.raises(ConnectError):
            connect(address, 2.0)

