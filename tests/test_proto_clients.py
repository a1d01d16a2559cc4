"""Clients of a declared protocol: the harness plays the protocol's server
(sockspec.adversary.declared), and the client families run on the example clients.

Unit tests: the adversary answers declared exchanges, bent by each plan piece, and
names a request the declaration does not allow. Proofs (selftest): the example
clients (examples/kv, examples/frames) pass every generic client family over tcp,
tcp6 and unix; each faulty client in examples/faulty_clients (run on each protocol)
and examples/*/faulty_clients fails its family and no other (as
tests/test_faulty_clients.py does for echo and http clients).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest
from example_variants import EXAMPLES, Variant, faulty_clients
from sockspec_runner import run_sockspec

from sockspec.adversary import AdversaryServer, Dribble, Ending, Plan
from sockspec.adversary.declared import DeclaredResponder, reply_report
from sockspec.errors import TargetConfigError
from sockspec.process.client import CapturedOutput, ClientRun
from sockspec.protocol.declared import load_protocol_file, parse_protocols
from sockspec.targets.clients import builtin_client_targets, load_target_file
from sockspec.transport import StreamEnd, TcpAddress, UnixAddress, connect, read_until_end
from sockspec.verdict import ScenarioFailed
from sockspec.verdict.client import expect_declared_failure, expect_declared_success

IO_TIMEOUT = 5.0   # generous "did not hang" bound
KV = load_protocol_file(EXAMPLES / "kv" / "protocol.toml")[0]
FRAMES = load_protocol_file(EXAMPLES / "frames" / "protocol.toml")[0]
FAULTY_CLIENT_TIMEOUT_S = 2
CLIENT_OF_KV = dataclasses.replace(builtin_client_targets()["reference-echo-client"],
                                   name="kv-client", profile="kv", protocol=KV)
GENERIC_CLIENT_FAMILIES = {"client-basic", "client-partial-reads", "client-reset-mid-response",
                           "client-short-body", "client-no-answer", "client-accept-late",
                           "client-unix-max-path"}


def declare(text: str):
    return parse_protocols(Path("test.toml"), text)[0]


@pytest.fixture
def socket_dir():
    path = tempfile.mkdtemp(prefix="ss-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["tcp", "unix"])
def address(request, socket_dir):
    if request.param == "unix":
        return UnixAddress(os.path.join(socket_dir, "p.sock"))
    return TcpAddress("127.0.0.1", 0)


def exchange(server: AdversaryServer, wire: bytes, *, fin: bool = True) -> tuple[bytes, StreamEnd]:
    """Send ``wire`` (then our FIN), read until the server's end."""
    with connect(server.address, IO_TIMEOUT) as sock:
        sock.sendall(wire)
        if fin:
            sock.shutdown(socket.SHUT_WR)
        return read_until_end(sock, IO_TIMEOUT)


def wait_for_end(server: AdversaryServer) -> None:
    deadline = time.monotonic() + IO_TIMEOUT
    while time.monotonic() < deadline and not all(log.ending for log in server.connections):
        time.sleep(0.01)


# -- the adversary answers declared exchanges ----------------------------------------------


def test_kv_requests_are_answered_as_declared(address):
    with AdversaryServer(address, Plan("kv", protocol=KV)) as server:
        received, end = exchange(server, b"PING\r\nSET key2 value2\r\nINCR hits\r\n"
                                         b"SET blob hello\r\nGET blob\r\n")
        wait_for_end(server)
    assert received == b"+PONG\r\n+OK\r\n:1\r\n+OK\r\n$hello\r\n" and end is StreamEnd.FIN
    assert server.replies() == [b"+PONG", b"+OK", b":1", b"+OK", b"$hello"]
    assert server.problems() == []
    log = server.connections[0]
    assert log.request == "requests: ping, set, incr, put, get" and log.client_end == "FIN"


def test_frames_replies_are_length_prefixed(address):
    requests = [b"\x03", bytes.fromhex("02 00000001 00000002 00000003"), b"\x01\x00\xffbin"]
    wire = b"".join(FRAMES.framing.encode(r) for r in requests)
    with AdversaryServer(address, Plan("frames", protocol=FRAMES)) as server:
        received, _ = exchange(server, wire)
    replies = [b"\x83frames/1", bytes.fromhex("82 0000000000000006"), b"\x81\x00\xffbin"]
    assert received == b"".join(FRAMES.framing.encode(r) for r in replies)
    assert server.replies() == replies


def test_a_request_matching_no_exchange_is_named_and_ends_the_connection(address):
    with AdversaryServer(address, Plan("kv", protocol=KV)) as server:
        received, end = exchange(server, b"PING\r\nFLUSHALL\r\nPING\r\n", fin=False)
    assert received == b"+PONG\r\n" and end is StreamEnd.FIN
    (problem,) = server.problems()
    assert "request #2 b'FLUSHALL' matches no exchange declared in [[protocol]] 'kv'" in problem
    assert "(ping, set, incr, put, get)" in problem
    assert problem in server.describe()


def test_an_exchange_without_a_known_reply_says_what_to_declare(address):
    protocol = declare('[[protocol]]\nname = "p"\nframing = "line"\n'
                       '[[protocol.exchange]]\nname = "time"\nsend = "TIME"\n'
                       'expect_regex = "^[0-9]+$"\n')
    with AdversaryServer(address, Plan("p", protocol=protocol)) as server:
        received, _ = exchange(server, b"TIME\n")
    assert received == b""
    (problem,) = server.problems()
    assert "is exchange 'time', whose reply the harness cannot know: declare reply = ... " \
           "on exchange 'time'" in problem


def test_variables_come_from_the_requests_and_captures():
    protocol = declare('[[protocol]]\nname = "p"\nframing = "line"\n'
                       '[[protocol.exchange]]\nname = "login"\nsend = "LOGIN {payload}"\n'
                       'expect_any = true\nreply = "TOKEN t-{n}"\n'
                       'capture = { name = "token", regex = "TOKEN (.*)" }\n'
                       '[[protocol.exchange]]\nname = "who"\nsend = "WHO {token}"\n'
                       'expect = "{payload} {token}"\n'
                       '[[protocol.exchange]]\nname = "same"\nsend = "ECHO {size} {size}"\n'
                       'expect_echo = true\n')
    responder = DeclaredResponder(protocol)
    assert responder.answer(b"LOGIN ann").frames == [b"TOKEN t-1"]
    assert responder.answer(b"WHO t-1").frames == [b"ann t-1"]
    assert responder.answer(b"ECHO 12 12").frames == [b"ECHO 12 12"]
    assert responder.answer(b"ECHO 12 13").problem is not None   # {size} must repeat


def test_dribble_sends_every_reply_byte_alone(address):
    plan = Plan("kv", protocol=KV, dribble=Dribble(1, 0.0005))
    with AdversaryServer(address, plan) as server:
        received, _ = exchange(server, b"PING\r\nGET blob\r\n")
    assert received == b"+PONG\r\n$\r\n"
    assert server.connections[0].segments == len(received)


@pytest.mark.parametrize("ending, end", [(Ending.CLOSE, StreamEnd.FIN),
                                         (Ending.RESET, StreamEnd.RST)])
def test_cut_reply_stops_half_way_through_its_first_frame(address, ending, end):
    plan = Plan("frames", protocol=FRAMES, cut_reply=2, ending=ending)
    wire = FRAMES.framing.encode(b"\x03") * 3
    with AdversaryServer(address, plan) as server:
        with connect(server.address, IO_TIMEOUT) as sock:
            sock.sendall(wire)   # no FIN: over a Unix socket the requests stay unread
            received, seen = read_until_end(sock, IO_TIMEOUT)
    info = FRAMES.framing.encode(b"\x83frames/1")
    assert received == info + info[:len(info) // 2] and seen is end
    log = server.connections[0]
    assert log.cut and log.replies == [b"\x83frames/1"] and log.owed == 2 * len(info)


def test_silence_reads_requests_and_answers_nothing(address):
    plan = Plan("kv", protocol=KV, answer=False, ending=Ending.HOLD_OPEN)
    with AdversaryServer(address, plan) as server:
        with connect(server.address, IO_TIMEOUT) as sock:
            sock.sendall(b"PING\r\n")
            received, end = read_until_end(sock, 0.3)
    assert (received, end) == (b"", StreamEnd.TIMEOUT)
    assert server.connections[0].request == "requests: ping" and server.connections[0].sent == 0


def test_one_exchange_per_connection_unless_keeps_connection(address):
    protocol = declare('[[protocol]]\nname = "p"\nframing = "line"\n'
                       '[[protocol.exchange]]\nname = "hi"\nsend = "HI"\nexpect = "HELLO"\n')
    with AdversaryServer(address, Plan("p", protocol=protocol)) as server:
        received, end = exchange(server, b"HI\nHI\n", fin=False)
    assert (received, end) == (b"HELLO\n", StreamEnd.FIN)
    assert "keeps_connection is not declared" in server.connections[0].request


def test_reply_report_forms():
    assert reply_report([b"+OK", b"$a b"], "replies") == b"+OK\n$a b\n"
    assert reply_report([b"\x81hi"], "replies_hex") == b"816869\n"


# -- verdicts on a declared client -------------------------------------------------------


class FakeServer:
    """What the verdicts read of an AdversaryServer: its replies, problems and logs."""

    def __init__(self, replies=(), problems=(), sent=0, owed=0):
        from sockspec.adversary import ConnectionLog

        log = ConnectionLog(1, 0.0, sent=sent, owed=owed, replies=list(replies))
        self._replies, self._problems, self.connections = list(replies), list(problems), [log]

    def replies(self):
        return self._replies

    def problems(self):
        return self._problems


def declared_client(report):
    return dataclasses.replace(CLIENT_OF_KV, report=report)


def run_of(status: int, output: bytes) -> ClientRun:
    stdout = CapturedOutput()
    stdout.add(output)
    return ClientRun(argv=["client"], exit_status=status, stdout=stdout, stderr_tail="",
                     started_at=0.0, ended_at=1.0, time_limit=5.0, timed_out=False)


def test_declared_success_judges_the_report_when_the_table_says_so():
    server = FakeServer([b"\x81hi", b"+OK"])
    expect_declared_success(declared_client("replies_hex"), run_of(0, b"81 6869\n2B4F4B\n"),
                            server, "x")
    expect_declared_success(declared_client(None), run_of(0, b"anything"), server, "x")
    with pytest.raises(ScenarioFailed, match="its report .replies: 2 replies. is 4 bytes where"):
        expect_declared_success(declared_client("replies"), run_of(0, b"+OK\n"), server, "x")


def test_declared_success_needs_an_exchange_and_declared_requests():
    with pytest.raises(ScenarioFailed, match="completed no exchange"):
        expect_declared_success(declared_client(None), run_of(0, b""), FakeServer(), "x")
    with pytest.raises(ScenarioFailed, match="x: the request matches no exchange"):
        expect_declared_success(declared_client(None), run_of(0, b""),
                                FakeServer(problems=["the request matches no exchange"]), "x")


def test_declared_failure_says_what_was_delivered():
    with pytest.raises(ScenarioFailed, match="delivered 3 of the 7 reply bytes owed"):
        expect_declared_failure(declared_client(None), run_of(0, b""),
                                FakeServer(sent=3, owed=7), "cut")
    expect_declared_failure(declared_client(None), run_of(1, b""), FakeServer(sent=3, owed=7),
                            "cut")


# -- [[client]] tables of a declared protocol -----------------------------------------------


def client_file(tmp_path: Path, extra: str, command: str = '"{hostport}"') -> Path:
    path = tmp_path / "clients.toml"
    path.write_text(f'protocols = ["{EXAMPLES / "kv" / "protocol.toml"}"]\n'
                    f'[[client]]\nname = "c"\nprofile = "kv"\n'
                    f'tcp = ["prog", {command}]\n{extra}')
    return path


def test_a_declared_client_table_holds_its_protocol_and_report(tmp_path):
    (client,) = load_target_file(client_file(tmp_path, 'report = "replies"\n')).clients
    assert client.protocol is KV or client.protocol.name == "kv"
    assert client.report == "replies"


@pytest.mark.parametrize("extra, command, message", [
    ('report = "lines"\n', '"{hostport}"', "key 'report' must be \"replies\" or \"replies_hex\""),
    ("", '"{hostport}", "{in}"', "{in} means nothing to a client of the declared protocol 'kv'"),
    ("", '"{url}"', "{url} means nothing to a client of the declared protocol 'kv'"),
])
def test_declared_client_table_mistakes(tmp_path, extra, command, message):
    with pytest.raises(TargetConfigError) as caught:
        load_target_file(client_file(tmp_path, extra, command))
    assert message in str(caught.value)


def test_report_is_for_declared_clients_only(tmp_path):
    path = tmp_path / "clients.toml"
    path.write_text('[[client]]\nname = "c"\nprofile = "echo"\ntcp = ["prog", "{hostport}"]\n'
                    'report = "replies"\n')
    with pytest.raises(TargetConfigError, match="key 'report' is for clients of a declared"):
        load_target_file(path)


# -- proofs: the example clients and their faulty variants ----------------------------------


def faulty_client_table(faulty: Variant) -> str:
    """A [[client]] table for a faulty example client (its base client's command line)."""
    folder = EXAMPLES / faulty.protocol
    requests = str(folder / "client-requests.txt")

    def argv(where: str) -> str:
        return json.dumps([*faulty.command, where, "--file", requests,
                           "--timeout", str(FAULTY_CLIENT_TIMEOUT_S)])

    report = "replies" if faulty.protocol == "kv" else "replies_hex"
    return (f'protocols = ["{folder / "protocol.toml"}"]\n'
            f'[[client]]\nname = "{faulty.name}"\nprofile = "{faulty.protocol}"\n'
            f"tcp = {argv('{hostport}')}\nunix = {argv('unix:{path}')}\n"
            f'report = "{report}"\nfailure_status = [1]\n'
            f"timeout_s = {FAULTY_CLIENT_TIMEOUT_S}\n")


FAULTY_CASES = [
    pytest.param(faulty, transport, id=f"{faulty.name}-{transport}")
    for faulty in faulty_clients()
    for transport in faulty.transports
]


def test_every_generic_client_family_has_a_faulty_example_client():
    from sockspec.catalogue import DECLARED, load_catalogue

    generic = {s.family.name for s in load_catalogue()
               if s.kind == "client" and DECLARED in s.profiles}
    assert generic == GENERIC_CLIENT_FAMILIES
    proven = {faulty.family for faulty in faulty_clients()}
    assert generic - {"client-basic"} <= proven, sorted(generic - proven)


@pytest.mark.selftest
@pytest.mark.parametrize("protocol", ["kv", "frames"])
def test_example_client_passes_every_generic_client_family(protocol):
    outcome = run_sockspec("--targets", str(EXAMPLES / protocol / "targets.toml"),
                           "--target", f"{protocol}-client")
    assert outcome.document is not None, outcome.stderr[-2000:]
    results = outcome.results()
    bad = [(r["scenario"], r["transport"], r["evidence"][:300]) for r in results
           if r["outcome"] not in ("passed", "skipped")]
    assert not bad and outcome.status == 0, bad or outcome.stderr[-2000:]
    ran = {(r["family"], r["transport"]) for r in results if r["outcome"] == "passed"}
    for transport in ("tcp", "tcp6", "unix"):
        families = {f for f, t in ran if t == transport}
        expected = GENERIC_CLIENT_FAMILIES - ({"client-unix-max-path"} if transport != "unix"
                                              else set())
        assert families == expected, (transport, sorted(families))


@pytest.mark.selftest
@pytest.mark.parametrize("faulty, transport", FAULTY_CASES)
def test_faulty_example_client_fails_its_family_only(tmp_path, faulty, transport):
    targets = tmp_path / "clients.toml"
    targets.write_text(faulty_client_table(faulty))
    outcome = run_sockspec("--targets", str(targets), "--transport", transport)
    assert outcome.document is not None, outcome.stderr[-2000:]
    assert outcome.status == 1, "a faulty client must make the run fail"
    mine = outcome.results(family=faulty.family)
    assert mine, f"no {faulty.family} scenario ran for {faulty.name}"
    failed = [r for r in mine if r["outcome"] == "failed"]
    assert failed, f"{faulty.family} passed on {faulty.name}"
    assert all(r["evidence"].strip() for r in failed)
    allowed = {faulty.family, *faulty.also_fails}
    unexpected = sorted({(r["family"], r["scenario"], r["outcome"], r["evidence"][:300])
                         for r in outcome.results() if r["outcome"] in ("failed", "error")
                         and r["family"] not in allowed})
    assert not unexpected, f"{faulty.name} also failed: {unexpected}"


@pytest.mark.selftest
def test_an_undeclared_request_fails_client_basic_naming_it(tmp_path):
    requests = tmp_path / "requests.txt"
    requests.write_text("PING\nFLUSHALL\n")
    client = json.dumps([sys.executable, str(EXAMPLES / "kv" / "client.py"), "{hostport}",
                         "--file", str(requests), "--timeout", "2"])
    targets = tmp_path / "clients.toml"
    targets.write_text(f'protocols = ["{EXAMPLES / "kv" / "protocol.toml"}"]\n'
                       f'[[client]]\nname = "kv-flush"\nprofile = "kv"\ntcp = {client}\n'
                       f"timeout_s = 2\n")
    outcome = run_sockspec("--targets", str(targets), "--transport", "tcp",
                           "proto_client_basic_exchange")
    (result,) = outcome.results()
    assert result["outcome"] == "failed", result
    assert "request #2 b'FLUSHALL' matches no exchange declared in [[protocol]] 'kv'" \
        in result["evidence"]
