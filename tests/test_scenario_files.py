"""Scenario files (issue 19 §2): the format, its mistakes, the runner, the pytest items.

README, "Scenario files". Parsing and the runner's verdicts are checked in process (a
small line server of this module, on loopback); collection, selection, results and
``reproduce`` through `sockspec run` and plain pytest in subprocesses, against the
example kv and frames servers (examples/*/server.py) and a one-defect kv variant.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sockspec import cli
from sockspec.scenario_files.steps import parse_time_scale, run_scenario, time_scale
from sockspec.scenario_files.syntax import ScenarioFileError, parse_scenario_file
from sockspec.transport import TcpAddress
from sockspec.verdict import ScenarioFailed

PROJECT = Path(__file__).resolve().parent.parent
KV = PROJECT / "examples" / "kv"
FRAMES = PROJECT / "examples" / "frames"

PROTOCOL = """\
[[protocol]]
name = "lines"
framing = "crlf"
[[protocol.exchange]]
name = "ping"
send = "PING"
expect = "+PONG"
"""

HEADER = """\
sockspec 1
family line-store
behaviour the line server answers
hint answer every line
description a scenario of the tests
protocol lines from lines.toml
"""


def write(tmp_path: Path, body: str, name: str = "scenario.sockspec",
          header: str = HEADER) -> Path:
    (tmp_path / "lines.toml").write_text(PROTOCOL)
    path = tmp_path / name
    path.write_text(header + body)
    return path


# -- parsing: every step form ---------------------------------------------------------


def test_every_step_form_parses(tmp_path):
    (tmp_path / "body.bin").write_bytes(b"\x00\x01")
    path = write(tmp_path, """\
transports tcp tcp6
timeout 3
connect a
connect b timeout 2
send a "SET k{hex:20}v\\t"
send b hex 0a0b 0c repeat "ab" 3 random 5 file body.bin
send a raw "PING\\r\\n"
recv a 4
recv a sent
recv a frame
recv a until "\\r\\n" timeout 1
recv a until regex "[0-9]+"
recv b until eof
expect a "+OK"
expect a hex 2b 4f "K"
expect a regex "^\\+O"
expect a length 3
expect a sent
capture a word "^(.)"
set copy "x{word}"
send a "GET {copy}"
expect a silence 500ms
shutdown a
expect a eof
close a
reset b
pause 0.1
repeat 3 as i {
    connect
    send c "{i}"
    expect c rst
}
actor other * 2 as n {
    connect
    barrier start
    send "{n}"
}
barrier start
""")
    scenario = parse_scenario_file(path)
    assert scenario.id == "scenario" and scenario.family == "line-store"
    assert scenario.protocol.name == "lines" and scenario.transports == ("tcp", "tcp6")
    assert scenario.timeout == 3.0 and scenario.barriers == {"start": 3}
    main, other = scenario.actors
    assert (other.name, other.copies, other.var) == ("other", 2, "n")
    steps = main.steps
    forms = [(s.verb, s.conn, s.mode) for s in steps]
    assert forms[:4] == [("connect", "a", ""), ("connect", "b", ""), ("send", "a", ""),
                         ("send", "b", "")]
    assert steps[1].timeout == 2.0
    assert steps[2].data.render({}) == b"SET k v\t" and not steps[2].raw
    assert steps[3].data.render({}, __import__("random").Random(0))[:9] == \
        b"\x0a\x0b\x0cababab"
    assert steps[3].data.render({}, __import__("random").Random(0))[-2:] == b"\x00\x01"
    assert steps[4].raw and steps[4].data.render({}) == b"PING\r\n"
    assert [(s.verb, s.mode) for s in steps[5:11]] == [
        ("recv", "count"), ("recv", "sent"), ("recv", "frame"), ("recv", "until"),
        ("recv", "regex"), ("recv", "eof")]
    assert steps[8].timeout == 1.0 and steps[10].conn == "b"
    assert [s.mode for s in steps[11:16]] == ["exact", "exact", "regex", "length", "sent"]
    assert steps[12].data.render({}) == b"+OK"
    assert steps[14].count == 3
    assert (steps[16].verb, steps[16].name, steps[16].pattern.pattern) == \
        ("capture", "word", b"^(.)")
    assert steps[17].verb == "set" and steps[17].data.render({"word": b"q"}) == b"xq"
    assert steps[19].mode == "silence" and steps[19].seconds == 0.5
    assert [s.verb for s in steps[20:25]] == ["shutdown", "expect", "close", "reset", "pause"]
    repeat = steps[25]
    assert (repeat.verb, repeat.count, repeat.var) == ("repeat", 3, "i")
    assert [(s.verb, s.mode) for s in repeat.body] == [("connect", ""), ("send", ""),
                                                       ("expect", "rst")]
    assert steps[26].verb == "barrier" and steps[26].name == "start"


# -- each class of mistake: one line naming file, line and step -----------------------

MISTAKES = {
    "unknown step": ("connect\nsendd \"PING\"\n", 8, "step 'sendd': unknown step; did you "
                     "mean 'send'?"),
    "bad regex": ("connect\nsend \"PING\"\nexpect regex \"([0-9]\"\n", 9,
                  "step 'expect': bad regex"),
    "undefined variable": ("connect\nsend \"GET {key}\"\n", 8,
                           "step 'send': undefined variable {key}"),
    "step impossible on a Unix socket": ("connect\nreset\n", 8,
                                         "step 'reset': a Unix socket has no RST"),
    "unknown protocol": ("connect\n", 6, "unknown protocol 'kvv'"),
    "bad version": ("connect\n", 1, "format version 2: this sockspec reads scenario files "
                    "of version 1"),
    "unknown connection": ("connect a\nsend b \"x\"\n", 8, "step 'send': no connection 'b'"),
    "block never closed": ("repeat 2 {\n  connect\n", 7, "this block is never closed"),
    "barrier of one actor": ("connect\nbarrier b\n", 8, "barrier 'b' is named by one actor"),
}


def mistaken(tmp_path: Path, kind: str) -> tuple[Path, int, str]:
    body, line, fragment = MISTAKES[kind]
    header = HEADER
    if kind == "unknown protocol":
        header = header.replace("protocol lines from lines.toml", "protocol kvv")
    if kind == "bad version":
        header = header.replace("sockspec 1", "sockspec 2")
    return write(tmp_path, body, name="mistake.sockspec", header=header), line, fragment


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_a_mistake_is_one_line_naming_file_line_and_step(tmp_path, kind):
    path, line, fragment = mistaken(tmp_path, kind)
    with pytest.raises(ScenarioFileError) as caught:
        parse_scenario_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: ") or \
        message.startswith(f"{os.path.relpath(path)}:{line}: "), message
    assert fragment in message, message


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_sockspec_run_refuses_a_mistake_before_starting(tmp_path, kind, capsys):
    path, line, fragment = mistaken(tmp_path, kind)
    status = cli.main(["run", str(path), "--server-cmd", "false {port}", "--profile", "echo"])
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockspec: ") and \
        f"mistake.sockspec:{line}: " in lines[0] and fragment in lines[0], err


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
@pytest.mark.parametrize("kind", ["unknown step", "undefined variable", "unknown protocol",
                                  "step impossible on a Unix socket"])
def test_plain_pytest_refuses_a_mistake_as_a_collection_error(tmp_path, kind, workers):
    path, line, fragment = mistaken(tmp_path, kind)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *workers, str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    # Exit 2 like sockspec run (pytest: interrupted by a collection error); nothing ran.
    assert result.returncode == 2, output
    assert "1 error" in output and " passed" not in output, output
    # The report of the error is its one line, naming the file, the line and the mistake.
    reported = [x for x in output.splitlines() if x.startswith(f"mistake.sockspec:{line}: ")]
    assert len(reported) == 1 and fragment in reported[0], output
    assert "Traceback" not in output


def test_a_bad_time_scale_is_refused():
    for text in ("0", "-1", "abc", "1000"):
        with pytest.raises(Exception, match="time scale"):
            parse_time_scale(text)
    assert parse_time_scale("2.5") == 2.5 and time_scale(3.0) == 3.0


# -- the runner against a small line server of this module -------------------------


class LineHandler(socketserver.StreamRequestHandler):
    """CRLF lines: PING -> +PONG, ECHO x -> x, QUIT -> +BYE then FIN, RESET -> RST,
    MUTE -> nothing; SET/GET on one dict (GET of a missing key: -ERR)."""

    store: dict[bytes, bytes] = {}

    def handle(self) -> None:
        for line in self.rfile:
            words = line.rstrip(b"\r\n").split(b" ", 1)
            verb, rest = words[0], words[1] if len(words) > 1 else b""
            if verb == b"PING":
                self.wfile.write(b"+PONG\r\n")
            elif verb == b"ECHO":
                self.wfile.write(rest + b"\r\n")
            elif verb == b"SET":
                key, _, value = rest.partition(b" ")
                self.store[key] = value
                self.wfile.write(b"+OK\r\n")
            elif verb == b"GET":
                value = self.store.get(rest)
                self.wfile.write(b"$" + value + b"\r\n" if value is not None else
                                 b"-ERR no such key\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"+BYE\r\n")
                self.connection.shutdown(socket.SHUT_WR)
                return
            elif verb == b"RESET":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
                return


class LineServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def line_server():
    server = LineServer(("127.0.0.1", 0), LineHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield TcpAddress("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_body(tmp_path: Path, address, body: str) -> None:
    scenario = parse_scenario_file(write(tmp_path, "transports tcp\ntimeout 2\n" + body))
    run_scenario(scenario, address, 1.0)


def test_a_correct_conversation_passes(tmp_path, line_server):
    run_body(tmp_path, line_server, """\
connect
send "PING"
expect "+PONG"
send "SET colour blue"
send "GET colour"
expect "+OK"
expect "$blue"
capture value "^\\$(.*)$"
send "ECHO {value}-{value}"
expect "blue-blue"
send raw "PING\\r\\nPING\\r\\n"
recv until "\\r\\n"
expect "+PONG\\r\\n"
recv 7
expect length 7
send "MUTE"
expect silence 0.2
send "QUIT"
expect "+BYE"
expect eof
connect
send "RESET"
expect rst
""")


@pytest.mark.parametrize("body, headline, facts", [
    ('connect\nsend "GET nothing"\nexpect "$blue"\n', 'scenario.sockspec:11: expect "$blue": '
     "the reply differs at byte 0", ["expected: b'$blue'", "received: b'-ERR no such key'"]),
    ('connect\nsend "RESET"\nexpect eof\n', "scenario.sockspec:11: expect eof: the stream "
     "ended with RST, not FIN", []),
    ('connect\nsend "QUIT"\nexpect "+BYE"\nexpect rst\n', "scenario.sockspec:12: expect rst: "
     "the stream ended with FIN, not RST", []),
    ('connect\nsend "QUIT"\nexpect eof\n', "scenario.sockspec:11: expect eof: bytes arrived "
     "where the end (FIN) was expected", ["received: b'+BYE"]),
    ('connect\nsend "PING"\nrecv 1\nexpect silence 0.5\n', "scenario.sockspec:12: expect "
     "silence 0.5: 6 bytes arrived where silence was expected", []),
    ('connect\nsend "PING"\ncapture n "^:([0-9]+)"\n', 'scenario.sockspec:11: capture n '
     '"^:([0-9]+)": capture n: the reply does not match', ["received: b'+PONG'"]),
])
def test_a_wrong_reply_fails_with_its_step_line_and_evidence(tmp_path, line_server, body,
                                                             headline, facts):
    with pytest.raises(ScenarioFailed) as caught:
        run_body(tmp_path, line_server, body)
    evidence = str(caught.value)
    assert evidence.splitlines()[0] == headline, evidence
    for fact in facts:
        assert fact in evidence, evidence


def test_actors_meet_at_barriers_and_see_each_other(tmp_path, line_server):
    run_body(tmp_path, line_server, """\
actor writer {
    connect
    send "SET shared 42"
    expect "+OK"
    barrier written
}
actor reader * 3 as i {
    connect
    barrier written
    send "GET shared"
    expect "$42"
    send "ECHO reader{i}"
    expect regex "^reader[123]$"
}
""")


def test_an_actor_that_ends_breaks_its_barrier_at_once(tmp_path, line_server):
    with pytest.raises(ScenarioFailed) as caught:
        run_body(tmp_path, line_server, """\
actor early {
    connect
    barrier met
}
actor late {
    connect
    barrier met
    barrier met timeout 60
}
""")
    first = str(caught.value).splitlines()[0]
    assert first == ("scenario.sockspec:16: barrier met timeout 60: barrier 'met' broken: "
                     "actor early ended without reaching it"), first


# -- pytest items: run, select, report, reproduce -------------------------------------


FAULTY_KV = """\
import sys
sys.path.insert(0, {kv!r})
from server import KVServer, main


class NoCount(KVServer):
    def do_incr(self, key):
        return b":1"   # the defect: INCR never counts past 1


if __name__ == "__main__":
    sys.exit(main(server_class=NoCount))
"""


def run(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_a_scenario_file_fails_a_faulty_server_with_evidence_and_a_reproduce(tmp_path):
    faulty = tmp_path / "no_count.py"
    faulty.write_text(FAULTY_KV.format(kv=str(KV)))
    scenario = KV / "scenarios" / "kv_incr_counts.sockspec"
    out = tmp_path / "r.json"
    command = ["--server-cmd", f"{sys.executable} {faulty} -h {{host}} -p {{port}}",
               "--profile", "kv", "--protocols", str(KV / "protocol.toml"), "--transport", "tcp"]
    result = run("sockspec", "run", str(scenario), *command, "--json", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    record, = json.loads(out.read_text())["results"]
    assert (record["scenario"], record["family"], record["outcome"]) == \
        ("kv_incr_counts", "kv-store", "failed")
    headline = record["evidence"].splitlines()[0]
    assert headline == 'kv_incr_counts.sockspec:14: expect ":{i}": the reply differs at byte 1'
    assert "expected: b':2'" in record["evidence"] and "received: b':1'" in record["evidence"]
    assert record["nodeid"].endswith("kv_incr_counts.sockspec::test_kv_incr_counts[server-cmd-tcp]")
    assert "examples/kv/scenarios/kv_incr_counts.sockspec kv_incr_counts" in record["reproduce"]
    # The correct server passes the same item.
    good = run("sockspec", "run", str(scenario), *command[:1],
               f"{sys.executable} {KV / 'server.py'} -h {{host}} -p {{port}}", *command[2:])
    assert good.returncode == 0, good.stdout + good.stderr


def test_plain_pytest_selects_reports_and_reproduces_a_file_item(tmp_path):
    out = tmp_path / "r.json"
    junit = tmp_path / "j.xml"
    result = run("pytest", "-p", "no:cacheprovider", "-q", "examples/frames/scenarios",
                 "-m", "frames-rpc", "-k", "errors", "--strict-markers",
                 "--targets", "examples/frames/targets.toml", "--transport", "tcp",
                 "--sockspec-json", str(out), "--junitxml", str(junit))
    assert result.returncode == 0, result.stdout + result.stderr
    record, = json.loads(out.read_text())["results"]
    assert (record["scenario"], record["transport"], record["outcome"]) == \
        ("frames_errors", "tcp", "passed")
    assert record["nodeid"] == ("examples/frames/scenarios/frames_errors.sockspec::"
                                "test_frames_errors[frames-python-tcp]")
    assert 'name="test_frames_errors[frames-python-tcp]"' in junit.read_text()
    reproduce = record["reproduce"].split()
    assert reproduce[:2] == ["sockspec", "run"] and \
        reproduce[-2:] == ["examples/frames/scenarios/frames_errors.sockspec", "frames_errors"]
    again = run("sockspec", *reproduce[1:], "--json", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    record, = json.loads(out.read_text())["results"]
    assert (record["scenario"], record["transport"], record["outcome"]) == \
        ("frames_errors", "tcp", "passed")


def test_sockspec_list_shows_the_example_scenario_files(capsys):
    with contextlib.chdir(PROJECT):
        status = cli.main(["list", "--no-catalogue", "examples/kv/scenarios",
                           "examples/frames/scenarios"])
    listed = capsys.readouterr().out.split("\n")
    assert status == 0
    ids = sorted(line.split()[0] for line in listed if line.strip())
    assert ids == ["frames_bad_length", "frames_client_fin_mid_frame",
                   "frames_client_split_prefix", "frames_errors", "frames_sum",
                   "kv_client_dribbled_pong", "kv_client_reset_after_reply", "kv_incr_counts",
                   "kv_set_get", "kv_shared_writes"]


def test_an_echo_scenario_in_a_builtin_family_runs_on_echo_servers_only(tmp_path):
    (tmp_path / "echo_bytes.sockspec").write_text("""\
sockspec 1
family basic
description 1000 random bytes come back, then the FIN answers ours
protocol echo
transports unix

connect
send random 1000
recv sent
expect sent
shutdown
expect eof
""")
    out = tmp_path / "r.json"
    result = run("sockspec", "run", str(tmp_path / "echo_bytes.sockspec"), "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads(out.read_text())["results"]
    # Only the echo server, and only over unix (the other transports: skipped, as said).
    assert {(r["scenario"], r["family"], r["target"]) for r in records} == \
        {("echo_bytes", "basic", "reference-echo")}
    assert {r["transport"]: r["outcome"] for r in records} == \
        {"tcp": "skipped", "tcp6": "skipped", "unix": "passed"}
    assert records[0]["hint"] == cli.families(cli.load_all([], builtin=True))["basic"].hint
