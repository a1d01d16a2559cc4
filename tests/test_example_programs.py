"""The example programs of issue 19: examples/kv and examples/frames.

Each correct server (Python, and C when a compiler exists) is started over tcp,
tcp6 and unix from its targets file, as sockspec starts a server under test (its
own process group, a time limit, SIGTERM at the end with the stop checked: exit
status 0, no SIGKILL needed, no process left, the address freed, the Unix socket
file removed). Every exchange
its protocol.toml declares must pass through sockspec's Conversation, including
the binary and large-reply sequences; the protocol details the declaration
does not cover are checked byte for byte; client.py is run against them.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sockspec.protocol.conversation import Conversation, FrameReader, sequence_values
from sockspec.protocol.declared import Protocol, load_protocol_file
from sockspec.targets.servers import Target, load_targets
from sockspec.transport import (
    Address,
    StreamEnd,
    TcpAddress,
    UnixAddress,
    abort,
    connect,
    read_until_end,
    send_all,
)
from sockspec.under_test.ports import PortAllocator
from sockspec.under_test.server import ServerUnderTest, StartPolicy, start_server

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
PROTOCOLS: dict[str, Protocol] = {
    name: load_protocol_file(EXAMPLES / name / "protocol.toml")[0] for name in ("kv", "frames")
}
TRANSPORTS = ("tcp", "tcp6", "unix")
IMPLEMENTATIONS = ("python", "c")
LIFETIME = 120.0        # the watchdog's bound on any one server
IO_TIMEOUT = 10.0       # generous: catches a hang, never a slow machine
PORTS = PortAllocator()
POLICY = StartPolicy(lifetime=LIFETIME)

ALL = [(p, i, t) for p in PROTOCOLS for i in IMPLEMENTATIONS for t in TRANSPORTS]
ON_TCP = [(p, i, "tcp") for p in PROTOCOLS for i in IMPLEMENTATIONS]


def ids(case: tuple[str, str, str]) -> str:
    return "-".join(case)


@pytest.fixture(scope="module")
def c_build(tmp_path_factory) -> Path | None:
    """examples/build.py into a temporary directory: the C servers, or None without cc."""
    out = tmp_path_factory.mktemp("examples-build")
    result = subprocess.run([sys.executable, str(EXAMPLES / "build.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    if shutil.which(os.environ.get("CC") or "cc") is None:
        assert (result.returncode, result.stdout) == (0, "skipped: no C compiler\n")
        return None
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"the C servers build with warnings:\n{result.stderr}"
    assert result.stdout.startswith("built ")
    return out


def target_for(protocol: str, implementation: str, c_build: Path | None) -> Target:
    """The [[server]] of examples/PROTOCOL/targets.toml (Python) or targets-c.toml (C,
    its binary taken from this run's build)."""
    if implementation == "python":
        return load_targets(EXAMPLES / protocol / "targets.toml")[0]
    if c_build is None:
        pytest.skip("no C compiler (cc): examples/build.py cannot build the C servers")
    target = load_targets(EXAMPLES / protocol / "targets-c.toml")[0]
    binary = str(c_build / f"{protocol}-server")
    assert target.tcp[0] == target.unix[0] == f"../build/{protocol}-server"
    return dataclasses.replace(target, tcp=(binary, *target.tcp[1:]),
                               unix=(binary, *target.unix[1:]))


class Started:
    """A running example server and what the test needs to talk to it."""

    def __init__(self, under_test: ServerUnderTest) -> None:
        self.under_test = under_test
        self.process = under_test.process
        self.address = under_test.address
        self.protocol = under_test.protocol

    def connect(self) -> socket.socket:
        return connect(self.address, IO_TIMEOUT)

    def conversation(self, sock: socket.socket) -> Conversation:
        return Conversation(self.protocol, sock, timeout=IO_TIMEOUT, rng=random.Random(19))


def start(case: tuple[str, str, str], c_build: Path | None,
          wrap: tuple[str, ...] = ()) -> Started:
    """Start the example server as sockspec starts a server under test."""
    protocol, implementation, transport = case
    target = target_for(protocol, implementation, c_build)
    assert target.protocol == PROTOCOLS[protocol]
    if wrap:
        target = dataclasses.replace(target, tcp=(*wrap, *target.tcp))
    return Started(start_server(target, transport, PORTS, POLICY))


def stop_cleanly(server: Started) -> None:
    """SIGTERM: the server exits 0 by itself, leaves nothing, removes its socket file."""
    try:
        report = server.process.stop(POLICY.stop_grace)
        assert report.problems() == []
        assert report.exit_status == 0, server.process.stderr_tail()
        if isinstance(server.address, UnixAddress):
            assert not os.path.lexists(server.address.path)
    finally:
        server.under_test.stop()


@pytest.fixture
def server(request, c_build) -> Iterator[Started]:
    running = start(request.param, c_build)
    try:
        yield running
    finally:
        stop_cleanly(running)


def wait_for(condition: Callable[[], bool], timeout: float = IO_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def expect_fin(sock: socket.socket) -> bytes:
    """What the server still sends, which must end with its FIN (not an RST, not silence)."""
    data, end = read_until_end(sock, IO_TIMEOUT)
    assert end is StreamEnd.FIN
    return data


class Asker:
    """Lockstep requests on one connection, framed as the protocol declares."""

    def __init__(self, server: Started, sock: socket.socket) -> None:
        self.framing = server.protocol.framing
        self.sock = sock
        self.reader = FrameReader(sock, self.framing)

    def __call__(self, payload: bytes) -> bytes:
        send_all(self.sock, self.framing.encode(payload))
        return self.reader.frame(IO_TIMEOUT)


# -- every declared exchange ------------------------------------------------------------


@pytest.mark.parametrize("server", ALL, ids=ids, indirect=True)
def test_declared_exchanges_and_sequences_pass(server):
    """The declaration's exchanges, then its binary (64 KiB) and large-reply (4 MiB)
    sequences, all on one connection; the client's FIN is answered with a FIN."""
    protocol = server.protocol
    with server.connect() as sock:
        talk = server.conversation(sock)
        outcomes = talk.run_all(protocol.exchanges)
        assert [o.problem for o in outcomes] == [None] * len(protocol.exchanges)
        for sequence in (protocol.binary, protocol.large_reply):
            values = sequence_values(protocol, sequence, random.Random(sequence.size))
            outcomes = talk.run_all(protocol.sequence(sequence), values)
            assert [o.problem for o in outcomes] == [None] * len(sequence.exchanges)
        sock.shutdown(socket.SHUT_WR)
        assert expect_fin(sock) == b""


@pytest.mark.parametrize("server", ALL, ids=ids, indirect=True)
def test_requests_sent_with_the_fin_in_pieces_are_all_answered(server):
    """Every declared request, framed back to back and sent 7 bytes at a time with
    pauses, then the FIN at once: each reply comes, in order, then the server's FIN."""
    protocol = server.protocol
    with server.connect() as sock:
        talk = server.conversation(sock)
        rendered = [talk.render(exchange) for exchange in protocol.exchanges]
        wire = b"".join(framed for _, framed in rendered)
        for offset in range(0, len(wire), 7):
            send_all(sock, wire[offset:offset + 7])
            time.sleep(0.001)
        sock.shutdown(socket.SHUT_WR)
        for exchange, (sent, framed) in zip(protocol.exchanges, rendered, strict=True):
            assert talk.receive(exchange, sent, framed).problem is None
        assert expect_fin(sock) == b""


# -- the protocols in detail ------------------------------------------------------------

KV = [case for case in ALL if case[0] == "kv"]
FRAMES = [case for case in ALL if case[0] == "frames"]


@pytest.mark.parametrize("server", KV, ids=ids, indirect=True)
def test_kv_commands(server):
    with server.connect() as sock:
        ask = Asker(server, sock)
        assert ask(b"PING") == b"+PONG"
        assert ask(b"ping") == b"+PONG"                       # verbs are case-insensitive
        assert ask(b"GET never-set") == b"-ERR no such key"
        assert [ask(b"INCR hits") for _ in range(3)] == [b":1", b":2", b":3"]
        assert ask(b"get hits") == b"$3"
        assert ask(b"SET hits 41") == b"+OK"
        assert ask(b"Incr hits") == b":42"
        assert ask(b"SET word abc") == b"+OK"
        assert ask(b"INCR word") == b"-ERR not an integer"
        assert ask(b"SET big 9223372036854775807") == b"+OK"
        assert ask(b"INCR big") == b"-ERR increment would overflow"
        assert ask(b"SET neg -5") == b"+OK"
        assert ask(b"INCR neg") == b":-4"
        assert ask(b"DEL hits") == b":1"
        assert ask(b"DEL hits") == b":0"
        assert ask(b"GET hits") == b"-ERR no such key"
        assert ask(b"FLY away") == b"-ERR unknown command"
        assert ask(b"") == b"-ERR unknown command"
        assert ask(b"SET lonely") == b"-ERR wrong number of arguments"
        assert ask(b"GET a b") == b"-ERR wrong number of arguments"
        assert ask(b"QUIT") == b"+BYE"
        assert expect_fin(sock) == b""                        # QUIT: the server closes


@pytest.mark.parametrize("server", [c for c in KV if c[2] == "tcp"], ids=ids, indirect=True)
def test_kv_line_too_long_is_refused_with_a_fin(server):
    with server.connect() as sock:
        send_all(sock, b"SET k " + b"x" * (8 * 1024 * 1024))  # 8 MiB + 6, no CRLF
        sock.shutdown(socket.SHUT_WR)
        assert expect_fin(sock) == b"-ERR line too long\r\n"


@pytest.mark.parametrize("server", [c for c in KV if c[2] == "tcp"], ids=ids, indirect=True)
def test_kv_concurrent_incr_all_count(server):
    """8 clients INCR one key 50 times each, at once: the shared dict is locked."""
    problems: list[str] = []

    def client() -> None:
        try:
            with server.connect() as sock:
                ask = Asker(server, sock)
                for _ in range(50):
                    if not ask(b"INCR shared").startswith(b":"):
                        problems.append("an INCR failed")
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            problems.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(IO_TIMEOUT * 3)
    assert problems == []
    with server.connect() as sock:
        assert Asker(server, sock)(b"GET shared") == b"$400"


@pytest.mark.parametrize("server", FRAMES, ids=ids, indirect=True)
def test_frames_operations(server):
    def u32s(*numbers: int) -> bytes:
        return b"".join(n.to_bytes(4, "big") for n in numbers)

    with server.connect() as sock:
        ask = Asker(server, sock)
        assert ask(b"\x03") == b"\x83frames/1"
        assert ask(b"\x03ignored") == b"\x83frames/1"
        assert ask(b"\x02" + u32s(1, 2**32 - 1, 7)) == b"\x82" + (2**32 + 7).to_bytes(8, "big")
        assert ask(b"\x02" + u32s(*[2**32 - 1] * 1000)) == b"\x82" + (1000 * (2**32 - 1)).to_bytes(8, "big")
        assert ask(b"\x02") == b"\x82" + bytes(8)
        assert ask(b"\x02\x00\x00\x01") == b"\xffbad SUM body"
        every_byte = bytes(range(256)) * 4
        assert ask(b"\x01" + every_byte) == b"\x81" + every_byte
        assert ask(b"\x01") == b"\x81"
        assert ask(b"\x10hello") == b"\xffunknown opcode"
        assert ask(b"\x81") == b"\xffunknown opcode"
        assert ask(b"") == b"\xffunknown opcode"
        sock.shutdown(socket.SHUT_WR)
        assert expect_fin(sock) == b""


@pytest.mark.parametrize("server", [c for c in FRAMES if c[2] == "tcp"], ids=ids, indirect=True)
def test_frames_length_over_16_mib_ends_the_connection_with_a_fin(server):
    with server.connect() as sock:
        send_all(sock, (16 * 1024 * 1024 + 1).to_bytes(4, "big") + b"\x01" + b"z" * 100_000)
        assert expect_fin(sock) == b""


# -- transport behaviour ----------------------------------------------------------------


@pytest.mark.parametrize("server", ALL, ids=ids, indirect=True)
def test_resets_mid_request_and_mid_reply_cost_nothing(server):
    """Clients that reset half-way through a request, or while a 4 MiB reply is on its
    way, end only their own connection: the descriptors come back and the server serves."""
    protocol = server.protocol
    settled = server.process.fd_count()
    for _ in range(3):
        sock = server.connect()
        payload, wire = server.conversation(sock).render(protocol.exchanges[0])
        send_all(sock, wire[:max(1, len(wire) // 2)])
        abort(sock)
        sock = server.connect()
        talk = server.conversation(sock)
        values = sequence_values(protocol, protocol.large_reply, random.Random(4))
        for exchange in protocol.sequence(protocol.large_reply):
            send_all(sock, talk.render(exchange, values)[1])
        abort(sock)  # the last reply (4 MiB) is still being sent
    assert wait_for(lambda: server.process.fd_count() <= settled), \
        f"{server.process.fd_count()} descriptors, {settled} before the resets"
    with server.connect() as sock:
        assert server.conversation(sock).run(protocol.exchanges[0]).problem is None
    assert server.process.alive()


@pytest.mark.parametrize("server", ALL, ids=ids, indirect=True)
def test_a_silent_client_does_not_stop_another(server):
    """One client sends half a request and waits: another is served meanwhile."""
    protocol = server.protocol
    with server.connect() as silent:
        _, wire = server.conversation(silent).render(protocol.exchanges[0])
        send_all(silent, wire[:max(1, len(wire) - 1)])
        with server.connect() as other:
            assert server.conversation(other).run(protocol.exchanges[0]).problem is None


@pytest.mark.parametrize("case", ON_TCP, ids=ids)
def test_out_of_descriptors_the_server_backs_off_and_serves_again(case, c_build):
    """Under RLIMIT_NOFILE 32, 40 clients connect: accept() fails with EMFILE while the
    queue holds the rest. Once the first clients leave, the queued ones are served."""
    limit = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32)); "
             "os.execvp(sys.argv[1], sys.argv[1:])")
    server = start(case, c_build, wrap=(sys.executable, "-c", limit))
    try:
        clients = [server.connect() for _ in range(40)]
        try:
            assert wait_for(lambda: server.process.fd_count() >= 32), \
                "the server never used all 32 descriptors"
            for sock in clients[:30]:
                sock.close()
            for sock in clients[30:]:
                assert server.conversation(sock).run(server.protocol.exchanges[0]).problem is None
        finally:
            for sock in clients:
                sock.close()
    finally:
        stop_cleanly(server)


@pytest.mark.parametrize("case", ALL, ids=ids)
def test_stops_on_sigterm_even_with_clients_connected(case, c_build):
    server = start(case, c_build)
    with server.connect(), server.connect() as busy:  # one idle, one mid-request
        _, wire = server.conversation(busy).render(server.protocol.exchanges[0])
        send_all(busy, wire[:1])
        stop_cleanly(server)


# -- client.py --------------------------------------------------------------------------

CLIENT_INPUT = {
    "kv": ("PING\nSET greeting hello\n\nINCR visits\nGET greeting\nGET nothing\nFLY\n",
           "+PONG\n+OK\n:1\n$hello\n-ERR no such key\n-ERR unknown command\n"),
    "frames": ("03\n01 68656c 6c6f\n02 00000001 00000002\n\n7f\n",
               "83 6672616d65732f31\n81 68656c6c6f\n82 0000000000000003\n"
               "ff 756e6b6e6f776e206f70636f6465\n"),
}


def client_address(address: Address) -> str:
    if isinstance(address, UnixAddress):
        return f"unix:{address.path}"
    return f"[{address.host}]:{address.port}" if ":" in address.host else \
        f"{address.host}:{address.port}"


def run_client(protocol: str, address: str, text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / protocol / "client.py"), address, *args],
                          input=text, capture_output=True, text=True, timeout=IO_TIMEOUT * 2)


@pytest.mark.parametrize("server", ALL, ids=ids, indirect=True)
def test_client_prints_every_reply(server, tmp_path):
    protocol = server.protocol.name
    text, printed = CLIENT_INPUT[protocol]
    requests = tmp_path / "requests.txt"
    requests.write_text(text)
    result = run_client(protocol, client_address(server.address), "", "--file", str(requests))
    assert (result.returncode, result.stdout, result.stderr) == (0, printed, "")


def test_kv_client_stops_after_quit(c_build):
    server = start(("kv", "python", "tcp"), c_build)
    try:
        result = run_client("kv", client_address(server.address), "PING\nQUIT\nPING\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, "+PONG\n+BYE\n", "")
    finally:
        stop_cleanly(server)


def misbehaving(behaviour: str) -> tuple[TcpAddress, threading.Thread, socket.socket]:
    """A one-connection server on loopback that resets, closes early or stays silent."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(IO_TIMEOUT)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(IO_TIMEOUT)
        conn.recv(100)
        if behaviour == "reset":
            abort(conn)
            return
        if behaviour == "close":
            conn.close()
            return
        read_until_end(conn, IO_TIMEOUT)  # silent until the client leaves
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return TcpAddress("127.0.0.1", listener.getsockname()[1]), thread, listener


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("behaviour", "message"), [
    ("reset", "client: the server reset the connection\n"),
    ("close", "client: the server closed the connection before its reply\n"),
    ("silent", "client: no reply within 0.5 s\n"),
])
def test_client_reports_a_misbehaving_server(protocol, behaviour, message):
    address, thread, listener = misbehaving(behaviour)
    try:
        text = CLIENT_INPUT[protocol][0]
        result = run_client(protocol, client_address(address), text, "--timeout", "0.5")
        assert (result.returncode, result.stdout, result.stderr) == (1, "", message)
    finally:
        thread.join(IO_TIMEOUT * 2)
        listener.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_refuses_bad_input(protocol, tmp_path):
    missing = tmp_path / "none.sock"
    text = CLIENT_INPUT[protocol][0]
    result = run_client(protocol, "nowhere", text)
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr
    result = run_client(protocol, f"unix:{missing}", text)
    assert (result.returncode, result.stderr) == (1, f"client: unix:{missing}: No such file or directory\n")
