"""Scenario files of role client (issue 19 §2, §3): the harness plays the server, step by
step, for a client under test.

README, "Scenario files", "Role client". Parsing and each class of mistake in process;
the runs in process too (run_client_scenario with a ClientUnderTest of the example
[[client]] tables: each run is a fraction of a second), on the example clients, the
faulty clients of examples/*/faulty_clients/ and tiny faulty clients of this module;
collection, selection, results and ``reproduce`` once through plain pytest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sockspec import cli
from sockspec.scenario_files.steps import run_client_scenario
from sockspec.scenario_files.syntax import ScenarioFileError, parse_scenario_file
from sockspec.targets.clients import load_target_file
from sockspec.under_test.client import ClientUnderTest
from sockspec.under_test.ports import PortAllocator
from sockspec.verdict import SHOULD, ScenarioFailed

PROJECT = Path(__file__).resolve().parent.parent
KV = PROJECT / "examples" / "kv"
FRAMES = PROJECT / "examples" / "frames"
PORTS = PortAllocator()

HEADER = """\
sockspec 1
family client-kv
behaviour the kv client reads every reply whole
hint loop on recv() until the CRLF
description a client scenario of the tests
protocol kv from {kv}/protocol.toml
role client
"""


def write(tmp_path: Path, body: str, header: str = HEADER, name: str = "c.sockspec") -> Path:
    path = tmp_path / name
    path.write_text(header.format(kv=KV) + body)
    return path


# -- parsing ------------------------------------------------------------------------------


def test_every_client_step_form_parses(tmp_path):
    path = write(tmp_path, """\
transports tcp tcp6
listen backlog 2 accept-after 200ms
accept
accept second timeout 2
expect c "PING"
recv second frame
send c dribble "+PONG"
send second dribble 5ms raw "+OK\\r\\n"
capture c key "^SET (\\S+)"
send c "+OK"
expect c eof
shutdown second
reset second
client finishes within 2
client succeeds
client reported "+PONG\\n"
client reported regex "^\\+PONG"
actor client {
    accept other
    expect other "PING"
}
""")
    scenario = parse_scenario_file(path)
    assert (scenario.role, scenario.family, scenario.backlog, scenario.accept_after) == \
        ("client", "client-kv", 2, 0.2)
    main, other = scenario.actors
    assert other.name == "client" and other.steps[0].verb == "accept"
    steps = main.steps
    assert [(s.verb, s.name) for s in steps[:2]] == [("accept", "c"), ("accept", "second")]
    assert steps[1].timeout == 2.0
    assert steps[4].dribble and steps[4].seconds == 0.001 and not steps[4].raw
    assert steps[5].dribble and steps[5].raw and steps[5].seconds == 0.005
    assert [(s.verb, s.mode) for s in steps[11:]] == [
        ("client", "finishes"), ("client", "succeeds"), ("client", "reported"),
        ("client", "reported-regex")]
    assert steps[11].seconds == 2.0 and steps[13].data.render({}) == b"+PONG\n"


def test_a_server_file_keeps_its_names_client_and_accept(tmp_path):
    """Names a version-1 server file could give stay usable: `connect client`."""
    path = write(tmp_path, "connect client\nsend client \"PING\"\nexpect client \"+PONG\"\n",
                 header=HEADER.replace("role client\n", "").replace("client-kv", "kv-x"))
    scenario = parse_scenario_file(path)
    assert scenario.role == "server" and scenario.actors[0].steps[1].conn == "client"


MISTAKES = {
    "connect in a client file": ("accept\nconnect\nclient succeeds\n", 9,
                                 "step 'connect': a client file (role client) plays the "
                                 "server: it does not connect"),
    "accept in a server file": ("accept\n", 7, "step 'accept': a server file (role server) "
                                "connects to the server under test"),
    "listen in a server file": ("listen\nconnect\n", 7, "step 'listen': a server file"),
    "client verdict in a server file": ("connect\nclient succeeds\n", 8,
                                        "step 'client': a server file (role server) judges a "
                                        "server"),
    "listen after a step": ("accept\nlisten\nclient succeeds\n", 9,
                            "step 'listen': `listen` comes before every other step"),
    "listen in an actor": ("actor a {\n  listen\n}\nclient succeeds\n", 9,
                           "step 'listen': `listen` comes before every other step and actor, "
                           "outside any block"),
    "no verdict": ("accept\nexpect \"PING\"\n", 9, "a client file (role client) judges its "
                   "client: end it with `client succeeds` or `client fails`"),
    "two verdicts": ("accept\nclient succeeds\nclient fails\n", 10,
                     "step 'client': the client's verdict is given once"),
    "verdict in an actor": ("actor a {\n  accept\n  client fails\n}\n", 10,
                            "step 'client': the client's verdict is a step of the main steps"),
    "verdict in a repeat": ("accept\nrepeat 2 {\n  client fails\n}\n", 10,
                            "step 'client': the client's verdict is a step of the main steps"),
    "bad verdict": ("accept\nclient passes\n", 9, "step 'client': write client succeeds |"),
    "finishes without within": ("accept\nclient finishes 2\nclient fails\n", 9,
                                "step 'client': write client finishes within S"),
    "bad backlog": ("listen backlog lots\naccept\nclient fails\n", 8,
                    "step 'listen': the backlog must be a whole number"),
    "accept from a connection never accepted": ("accept a\nsend b \"+OK\"\nclient fails\n", 9,
                                                "no connection 'b' here: open it first with "
                                                "`accept b`"),
    "echo in a client file": ("accept\nclient fails\n", 6, "protocol echo: a client file (role "
                              "client) plays a declared protocol's server"),
    "server family in a client file": ("accept\nclient fails\n", 2, "family 'kv-x': a client "
                                       "file (role client) judges clients"),
    "client family in a server file": ("connect\n", 2, "family 'client-kv': a family starting "
                                       "with 'client-' judges clients; add the header line "
                                       "`role client`"),
    "fresh-server in a client file": ("accept\nclient fails\n", 8, "fresh-server: a client "
                                      "file (role client) has no server under test"),
    "reset on a Unix socket": ("accept\nreset\nclient fails\n", 9, "step 'reset': a Unix "
                               "socket has no RST"),
}


def mistaken(tmp_path: Path, kind: str) -> tuple[Path, int, str]:
    body, line, fragment = MISTAKES[kind]
    header = HEADER
    if kind in ("accept in a server file", "listen in a server file",
                "client verdict in a server file"):
        header = header.replace("role client\n", "").replace("client-kv", "kv-x")
    elif kind == "client family in a server file":
        header = header.replace("role client\n", "")
    elif kind == "echo in a client file":
        header = header.replace("protocol kv from {kv}/protocol.toml", "protocol echo")
    elif kind == "server family in a client file":
        header = header.replace("client-kv", "kv-x")
    elif kind == "fresh-server in a client file":
        header += "fresh-server\n"
    return write(tmp_path, body, header=header, name="mistake.sockspec"), line, fragment


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_a_role_mistake_is_one_line_naming_file_line_and_step(tmp_path, kind):
    path, line, fragment = mistaken(tmp_path, kind)
    with pytest.raises(ScenarioFileError) as caught:
        parse_scenario_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: ") or \
        message.startswith(f"{os.path.relpath(path)}:{line}: "), message
    assert fragment in message, message


@pytest.mark.parametrize("kind", ["connect in a client file", "accept in a server file"])
def test_sockspec_run_refuses_a_role_mistake_before_starting(tmp_path, kind, capsys):
    path, line, fragment = mistaken(tmp_path, kind)
    status = cli.main(["run", str(path), "--targets", str(KV / "targets.toml")])
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockspec: ") and \
        f"mistake.sockspec:{line}: " in lines[0] and fragment in lines[0], err


# -- runs -------------------------------------------------------------------------------


def example_client(example: Path, program: tuple[str, ...] = (), transport: str = "tcp"):
    """The example's [[client]] target, or the same table running another program
    (its path relative to the example's folder, and its own first options)."""
    target, = load_target_file(example / "targets.toml").clients
    if program:
        def swap(argv: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(part for a in argv for part in (program if a == "client.py" else (a,)))

        target = dataclasses.replace(target, tcp=swap(target.tcp), unix=swap(target.unix))
    return ClientUnderTest(target, transport, PORTS)


def play(scenario_path: Path, client: ClientUnderTest) -> None:
    try:
        run_client_scenario(parse_scenario_file(scenario_path), client, 1.0)
    finally:
        client.close()
    assert len(client.runs) == 1   # the client ran once and ended (waited for), pass or fail
    assert not os.path.exists(client.workdir)


EXAMPLES = {
    # file: (example, faulty client, the failing step's line and what it says)
    "kv_client_dribbled_pong": (KV, ("faulty_clients/one_recv.py",), None, ""),
    "kv_client_reset_after_reply": (KV, ("../faulty_clients/reset_ends_quietly.py",
                                         "--protocol", "kv"), 19,
                                    "client fails: the client reported success (status 0) "
                                    "although this server broke the exchange"),
    "frames_client_split_prefix": (FRAMES, ("faulty_clients/one_recv.py",), None, ""),
    "frames_client_fin_mid_frame": (FRAMES, ("faulty_clients/short_frame_at_eof.py",), 14,
                                    "client fails: the client reported success (status 0) "
                                    "although this server broke the exchange"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_client_file_passes_on_the_example_client(name):
    example = EXAMPLES[name][0]
    play(example / "scenarios" / f"{name}.sockspec", example_client(example))


def test_an_example_client_file_passes_over_unix():
    play(FRAMES / "scenarios" / "frames_client_split_prefix.sockspec",
         example_client(FRAMES, transport="unix"))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_example_client_file_fails_its_faulty_client(name):
    example, faulty, line, says = EXAMPLES[name]
    client = example_client(example, faulty)
    with pytest.raises(ScenarioFailed) as caught:
        play(example / "scenarios" / f"{name}.sockspec", client)
    headline = caught.value.summary
    assert headline.startswith(f"{name}.sockspec:"), headline
    if line is not None:
        assert headline == f"{name}.sockspec:{line}: {says}"
    # The faulty client cannot read a reply in pieces: whatever step notices it first,
    # the verdict comes before the end of the file, never a pass.


TINY_CLIENT = """\
import socket, sys, time
where = sys.argv[1]
host, _, port = where.rpartition(":")
mode = sys.argv[2]
if mode == "never-connects":
    print("tiny: giving up at once", file=sys.stderr)
    sys.exit(1)
sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
sock.sendall(b"PING\\r\\n")
data = b""
while not data.endswith(b"\\r\\n"):
    chunk = sock.recv(100)
    if not chunk:
        sys.exit(1 if mode != "silent-failure" else 1)
    data += chunk
sys.stdout.write(data.decode().strip() + "\\n")
if mode == "timed":             # when the reply came, on the clock all processes share
    sys.stdout.write(f"{time.monotonic():.6f}\\n")
if mode == "waits-for-fin":
    while sock.recv(100):       # the defect of this one: no bound on waiting for the FIN
        pass
if mode == "silent-failure":
    sys.exit(1)                 # fails, but says nothing on stderr
"""


def tiny_client(tmp_path: Path, mode: str) -> ClientUnderTest:
    program = tmp_path / "tiny.py"
    program.write_text(TINY_CLIENT)
    target, = load_target_file(KV / "targets.toml").clients
    target = dataclasses.replace(target, tcp=(sys.executable, str(program), "{hostport}", mode),
                                 ipv6=False)
    return ClientUnderTest(target, "tcp", PORTS)


PONG = "transports tcp\naccept\nexpect \"PING\"\nsend \"+PONG\"\n"


def test_a_client_that_never_connects_fails_accept_at_once(tmp_path):
    path = write(tmp_path, "transports tcp\naccept\nclient succeeds\n")
    with pytest.raises(ScenarioFailed) as caught:
        play(path, tiny_client(tmp_path, "never-connects"))
    assert caught.value.summary.startswith("c.sockspec:9: accept: the client ended (exited "
                                           "with status 1")
    assert "giving up at once" in caught.value.summary


def test_client_finishes_within_fails_a_client_that_waits_too_long(tmp_path):
    path = write(tmp_path, PONG + "client finishes within 300ms\nclient succeeds\n")
    with pytest.raises(ScenarioFailed) as caught:
        play(path, tiny_client(tmp_path, "waits-for-fin"))
    assert caught.value.summary == ("c.sockspec:12: client finishes within 300ms: the client "
                                    "was still running 0.3 s later")
    # Closing the connection ends it: the same client passes once the server closes.
    path = write(tmp_path, PONG + "close\nclient finishes within 5\nclient succeeds\n"
                 "client reported \"+PONG\\n\"\n", name="d.sockspec")
    play(path, tiny_client(tmp_path, "waits-for-fin"))


def test_accept_after_holds_the_connection_in_the_queue(tmp_path):
    """`listen accept-after S`: the client's connect() completes in the kernel's queue,
    but nothing is accepted, so nothing answers, before S (times the scale) has passed
    since the listener was up. The listener comes up after `began`, so the reply comes
    at least 0.8 s after it (CLOCK_MONOTONIC is one clock for every process); the
    client's own start-up is not subtracted, as it was when it measured from its
    connect()."""
    path = write(tmp_path, PONG.replace("accept\n", "listen accept-after 400ms\naccept\n")
                 + "close\nclient succeeds\n")
    client = tiny_client(tmp_path, "timed")
    scenario = parse_scenario_file(path)
    assert scenario.accept_after == 0.4
    began = time.monotonic()
    try:
        run_client_scenario(scenario, client, 2.0)   # the time scale applies: 0.8 s
    finally:
        client.close()
    reply, replied_at = bytes(client.runs[0].stdout.head).decode().split()
    assert reply == "+PONG" and float(replied_at) - began >= 0.8, float(replied_at) - began


def test_client_reported_names_the_first_differing_byte(tmp_path):
    path = write(tmp_path, PONG + "client succeeds\nclient reported \"+PANG\\n\"\n")
    with pytest.raises(ScenarioFailed) as caught:
        play(path, tiny_client(tmp_path, "plain"))
    failure = caught.value
    assert failure.summary == ("c.sockspec:13: client reported \"+PANG\\n\": the client's "
                               "report differs at byte 2")
    assert failure.facts["expected"] == repr(b"+PANG\n")
    assert failure.facts["reported"] == repr(b"+PONG\n")


def test_client_fails_wants_a_failure_status_and_a_word_on_stderr(tmp_path):
    path = write(tmp_path, PONG + "client fails\n")
    with pytest.raises(ScenarioFailed) as caught:
        play(path, tiny_client(tmp_path, "plain"))
    assert caught.value.summary.endswith("client fails: the client reported success (status "
                                         "0) although this server broke the exchange")
    with pytest.raises(ScenarioFailed) as caught:
        play(path, tiny_client(tmp_path, "silent-failure"))
    assert caught.value.level == SHOULD
    assert "without a word on stderr" in caught.value.summary


def test_a_request_that_differs_is_named_as_the_clients_request(tmp_path):
    path = write(tmp_path, "transports tcp\naccept\nexpect \"PONG\"\nclient fails\n")
    with pytest.raises(ScenarioFailed) as caught:
        play(path, tiny_client(tmp_path, "plain"))
    failure = caught.value
    assert failure.summary == 'c.sockspec:10: expect "PONG": the request differs at byte 1'
    assert failure.facts["received"] == repr(b"PING")


# -- pytest items ----------------------------------------------------------------------


def test_plain_pytest_parametrizes_client_files_over_client_targets(tmp_path):
    out = tmp_path / "r.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "examples/kv/scenarios", "-m", "client-reset-mid-response", "--strict-markers",
         "--targets", "examples/kv/targets.toml", "--sockspec-json", str(out)],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads(out.read_text())["results"]
    by_transport = {r["transport"]: r for r in records}
    assert {t: r["outcome"] for t, r in by_transport.items()} == \
        {"tcp": "passed", "tcp6": "passed", "unix": "skipped"}
    record = by_transport["tcp"]
    assert (record["scenario"], record["family"], record["target"], record["kind"]) == \
        ("kv_client_reset_after_reply", "client-reset-mid-response", "kv-client", "client")
    assert record["nodeid"] == ("examples/kv/scenarios/kv_client_reset_after_reply.sockspec::"
                                "test_kv_client_reset_after_reply[kv-client-tcp]")
    reproduce = record["reproduce"].split()
    assert reproduce[-2:] == ["examples/kv/scenarios/kv_client_reset_after_reply.sockspec",
                              "kv_client_reset_after_reply"]
    again = subprocess.run(
        [sys.executable, "-m", "sockspec", *reproduce[1:], "--json", str(out)],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stdout + again.stderr
    record, = json.loads(out.read_text())["results"]
    assert (record["scenario"], record["transport"], record["outcome"]) == \
        ("kv_client_reset_after_reply", "tcp", "passed")


def test_sockspec_list_kind_client_shows_the_client_files(capsys, monkeypatch):
    monkeypatch.chdir(PROJECT)
    status = cli.main(["list", "--no-catalogue", "--kind", "client", "examples/kv/scenarios",
                       "examples/frames/scenarios"])
    listed = capsys.readouterr().out.split("\n")
    assert status == 0
    assert sorted(line.split()[0] for line in listed if line.strip()) == \
        ["frames_client_fin_mid_frame", "frames_client_split_prefix",
         "kv_client_dribbled_pong", "kv_client_reset_after_reply"]
