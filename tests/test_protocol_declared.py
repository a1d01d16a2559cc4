"""Declared protocols ([[protocol]], format version 1): parsing, the line of every mistake,
framing, templates, judging replies, and how targets name them."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sockspec.catalogue import DECLARED, Family, scenario, spec_of
from sockspec.errors import UsageError
from sockspec.protocol.conversation import Conversation, FrameReader, first_request
from sockspec.protocol.declared import (
    Framing,
    ProtocolError,
    Template,
    load_protocol_file,
    parse_protocols,
)
from sockspec.targets.clients import load_target_file
from sockspec.targets.servers import adhoc_target, load_targets

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "examples"

MINIMAL = """\
[[protocol]]
name = "kv"
framing = "crlf"

[[protocol.exchange]]
name = "ping"
send = "PING"
expect = "+PONG"
"""


def parse(text: str, file: str = "p.toml"):
    return parse_protocols(Path(file), textwrap.dedent(text))


def error_of(text: str) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- the examples' declarations load --------------------------------------------------


def test_kv_example_declaration_gets_every_need():
    (kv,) = load_protocol_file(EXAMPLES / "kv" / "protocol.toml")
    assert kv.name == "kv" and kv.framing.kind == "crlf"
    assert [e.name for e in kv.exchanges] == ["ping", "set", "incr", "put", "get"]
    for need in ("exchange", "answers_after_fin", "keeps_connection", "concurrent", "binary",
                 "large_reply"):
        assert kv.meets(need), need
    assert kv.missing(("binary", "large_reply")) is None


def test_kv_example_declaration_is_about_twenty_lines_of_toml():
    text = (EXAMPLES / "kv" / "protocol.toml").read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) <= 40   # the "about 20 lines": 5 exchanges of 3 lines, 4 tables


def test_frames_example_declaration_uses_a_length_prefix():
    (frames,) = load_protocol_file(EXAMPLES / "frames" / "protocol.toml")
    assert frames.framing == Framing("length", width=4, endian="big")
    assert frames.binary.alphabet == "all" and frames.large_reply.size >= 4 * 1024 * 1024


# -- framing -----------------------------------------------------------------------------


@pytest.mark.parametrize("framing, payload, wire", [
    (Framing("line", delimiter=b"\n"), b"abc", b"abc\n"),
    (Framing("crlf", delimiter=b"\r\n"), b"abc", b"abc\r\n"),
    (Framing("delimiter", delimiter=b"\0"), b"abc", b"abc\0"),
    (Framing("length", width=2, endian="big"), b"abc", b"\x00\x03abc"),
    (Framing("length", width=4, endian="little"), b"abc", b"\x03\x00\x00\x00abc"),
    (Framing("length", width=1, counts_header=True), b"abc", b"\x04abc"),
    (Framing("fixed", size=3), b"abc", b"abc"),
    (Framing("close"), b"abc", b"abc"),
])
def test_framing_round_trip(framing, payload, wire):
    assert framing.encode(payload) == wire
    at_end = framing.kind == "close"
    assert framing.decode(wire + b"next", at_end=at_end) == (
        (payload + b"next", len(wire) + 4) if at_end else (payload, len(wire)))
    assert framing.decode(wire[:-1]) is None    # incomplete: wait for more


def test_framing_refuses_a_frame_beyond_its_maximum():
    with pytest.raises(ValueError, match="out of range"):
        Framing("length", width=4, max_frame=10).decode(struct.pack(">I", 11) + b"x")
    with pytest.raises(ValueError, match="no line end"):
        Framing("line", delimiter=b"\n", max_frame=4).decode(b"abcdef")


def test_fixed_framing_refuses_a_payload_of_another_size():
    with pytest.raises(ValueError, match="3 bytes, not 2"):
        Framing("fixed", size=3).encode(b"ab")


# -- templates ---------------------------------------------------------------------------


def test_template_variables_hex_and_literal_braces():
    template = Template.parse("{hex:81 00}{payload}:{n} {{x}}")
    assert template.variables == ("payload", "n")
    assert template.render({"payload": b"P", "n": b"7"}) == b"\x81\x00P:7 {x}"


@pytest.mark.parametrize("text, problem", [
    ("a{b", "lone '{'"), ("a}b", "lone '}'"), ("{}", "lone '{'"), ("{hex:8}", "whole bytes"),
])
def test_template_mistakes(text, problem):
    with pytest.raises(ValueError, match=problem):
        Template.parse(text)


# -- each class of mistake: one line, the file and the line ------------------------------


@pytest.mark.parametrize("text, line, words", [
    ("[[protocol]]\nframing = 'crlf'\n", 1, "missing key 'name'"),
    ("[[protocol]]\nname = 'echo'\nframing = 'crlf'\n", 2, "built-in profile"),
    ("[[protocol]]\nname = 'kv'\nversion = 2\nframing = 'crlf'\n", 3,
     "reads protocol declarations of version 1"),
    ("[[protocol]]\nname = 'kv'\nframming = 'crlf'\n", 3, "unknown key 'framming'; did you mean 'framing'?"),
    ("[[protocol]]\nname = 'kv'\nframing = 'lines'\n", 3, "framing kind must be one of"),
    ("[[protocol]]\nname = 'kv'\nframing = { kind = 'length', width = 3 }\n", 3,
     "width = 1, 2, 4 or 8"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = 'X'\nsend_hex = '00'\nexpect = 'Y'\n", 5, "exactly one of send, send_hex"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = 'GET {key}'\nexpect = 'Y'\n", 7, "undefined variable {key}"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = 'X'\nexpect_regex = '(unclosed'\n", 8, "bad expect_regex regex"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = \"X\\r\\n\"\nexpect = 'Y'\n", 7, "the framing adds it"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = 'X'\nexpect = 'Y'\nbogus = 1\n", 9, "unknown key 'bogus'"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = 'X'\nexpect = 'Y'\n\n[protocol.binary]\nexchanges = ['b']\n", 11,
     "names no exchange 'b'"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol.exchange]]\nname = 'a'\n"
     "send = 'X'\nexpect = 'Y'\n\n[protocol.binary]\nexchanges = ['a']\nalphabet = 'all'\n", 12,
     "use \"no-delimiter\" or \"text\""),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[protocol.properties]\n"
     "answers_after_fin = 'yes'\n", 6, "must be true or false"),
    ("[[protocol]]\nname = 'kv'\nframing = 'crlf'\n\n[[protocol]]\nname = 'kv'\n"
     "framing = 'line'\n", 6, "already declared"),
])
def test_mistake_names_file_and_line(text, line, words):
    message = error_of(text)
    assert message.startswith(f"p.toml:{line}: "), message
    assert words in message


USE = '[[protocol.exchange]]\nname = "use"\nsend = "GET {id}"\nexpect = "{id}"\n'
NEW = ('[[protocol.exchange]]\nname = "new"\nsend = "NEW"\nexpect_any = true\n'
       "capture = { name = \"id\", regex = 'id=([0-9]+)' }\n")
HEAD = '[[protocol]]\nname = "kv"\nframing = "line"\n'


def test_capture_defines_a_variable_for_later_exchanges_only():
    assert error_of(HEAD + USE + NEW) == (
        "p.toml:6: [[protocol]] 'kv' exchange 'use': send uses undefined variable {id} "
        "(known: n, payload, size)")
    (protocol,) = parse(HEAD + NEW + USE)
    assert [e.name for e in protocol.exchanges] == ["new", "use"]
    assert protocol.exchange("new").capture.take(b"ok id=42") == b"42"


def test_unreadable_and_empty_protocol_files(tmp_path):
    with pytest.raises(ProtocolError, match="cannot read the protocol file"):
        load_protocol_file(tmp_path / "missing.toml")
    (tmp_path / "empty.toml").write_text("# nothing\n")
    with pytest.raises(ProtocolError, match="declares no \\[\\[protocol\\]\\]"):
        load_protocol_file(tmp_path / "empty.toml")
    (tmp_path / "bad.toml").write_text("[[protocol]\n")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        load_protocol_file(tmp_path / "bad.toml")


# -- judging replies over a socket pair --------------------------------------------------


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield ours, theirs


def kv():
    (protocol,) = parse(MINIMAL + textwrap.dedent("""\
        [[protocol.exchange]]
        name = "incr"
        send = "INCR {payload}"
        expect_regex = '^:[0-9]+$'
        capture = { name = "count", regex = ':([0-9]+)' }

        [[protocol.exchange]]
        name = "again"
        send = "SEEN {count}"
        expect = "+{count} {payload}"
        """))
    return protocol


def test_conversation_runs_exchanges_and_carries_captures(pair):
    ours, theirs = pair
    protocol = kv()
    theirs.sendall(b"+PONG\r\n:41\r\n+41 abc\r\n")
    conversation = Conversation(protocol, ours, timeout=2.0, values={"payload": b"abc"})
    outcomes = conversation.run_all(protocol.exchanges)
    assert [o.problem for o in outcomes] == [None, None, None]
    assert conversation.values["count"] == b"41"
    assert theirs.recv(100) == b"PING\r\nINCR abc\r\nSEEN 41\r\n"


def test_conversation_says_what_differs(pair):
    ours, theirs = pair
    theirs.sendall(b"+PANG\r\n")
    outcome = Conversation(kv(), ours, timeout=2.0).run(kv().exchange("ping"))
    assert not outcome.ok
    assert "differs from b'+PONG'" in outcome.problem and "byte 2" in outcome.problem
    assert outcome.facts()["reply"] == "b'+PANG'"


def test_conversation_says_how_the_stream_ended(pair):
    ours, theirs = pair
    theirs.sendall(b"+PO")
    theirs.shutdown(socket.SHUT_WR)
    outcome = Conversation(kv(), ours, timeout=2.0).run(kv().exchange("ping"))
    assert outcome.problem == ("the stream ended with FIN before a complete reply frame "
                               "(3 bytes of an incomplete frame)")


def test_conversation_times_out_on_silence(pair):
    ours, _ = pair
    outcome = Conversation(kv(), ours, timeout=0.2).run(kv().exchange("ping"))
    assert outcome.problem == "no complete reply frame within 0.2 s"


def test_a_failed_capture_is_a_problem(pair):
    ours, theirs = pair
    protocol = kv()
    theirs.sendall(b":x\r\n")
    outcome = Conversation(protocol, ours, timeout=2.0).run(protocol.exchange("incr"))
    assert "does not match" in outcome.problem


def test_frame_reader_refuses_a_broken_frame(pair):
    ours, theirs = pair
    theirs.sendall(struct.pack(">I", 1 << 30))
    reader = FrameReader(ours, Framing("length", width=4, max_frame=1024))
    with pytest.raises(Exception, match="breaks the framing"):
        reader.frame(1.0)


def test_default_payload_is_text_and_stays_for_the_connection():
    protocol = kv()
    conversation = Conversation(protocol, None, timeout=1.0, rng=random.Random(5))
    first = conversation.render(protocol.exchange("incr"))[0]
    second = conversation.render(protocol.exchange("incr"))[0]
    assert first == second and first[5:].isalnum() and len(first) == 5 + 16
    assert first_request(protocol) == b"PING\r\n"


# -- targets name declared protocols -------------------------------------------------------


def test_targets_file_with_inline_and_included_protocols(tmp_path):
    (tmp_path / "proto.toml").write_text(MINIMAL)
    (tmp_path / "t.toml").write_text(textwrap.dedent("""\
        protocols = ["proto.toml"]

        [[protocol]]
        name = "other"
        framing = "line"
        [[protocol.exchange]]
        send = "x"
        expect_echo = true

        [[server]]
        name = "mine"
        profile = "kv"
        tcp = ["srv", "-p", "{port}"]

        [[client]]
        name = "c"
        profile = "other"
        tcp = ["cli", "{hostport}"]
        """))
    loaded = load_target_file(tmp_path / "t.toml")
    assert not loaded.warnings
    (server,), (client,) = loaded.servers, loaded.clients
    assert server.protocol.name == "kv" and client.protocol.name == "other"
    assert load_targets(tmp_path / "t.toml")[0].protocol.source == str(tmp_path / "proto.toml")


def test_unknown_profile_lists_the_declared_ones(tmp_path):
    (tmp_path / "t.toml").write_text(MINIMAL + '[[server]]\nname = "s"\nprofile = "kvv"\n'
                                     'tcp = ["srv", "{port}"]\n')
    with pytest.raises(Exception, match='must be "echo", "http" or "kv"'):
        load_targets(tmp_path / "t.toml")


def test_adhoc_declared_profile_needs_its_protocol_file():
    with pytest.raises(UsageError, match="needs --protocols FILE"):
        adhoc_target("srv -p {port}", "kv", "/tmp")
    (protocol,) = parse(MINIMAL)
    target = adhoc_target("srv -p {port}", "kv", "/tmp", {"kv": protocol})
    assert target.protocol is protocol


def test_a_generic_scenario_names_what_to_declare():
    family = Family(name="basic", behaviour="b", hint="h")

    @scenario(family, profiles=(DECLARED,), needs=("large_reply",))
    def test_proto_needs_a_large_reply(server):
        """Declares a need."""

    spec = spec_of(test_proto_needs_a_large_reply)
    (protocol,) = parse(MINIMAL)

    class Holder:
        pass

    holder = Holder()
    holder.protocol = protocol
    # A generic scenario of the user's runs on echo and http servers too (on their
    # built-in declarations: tests/test_protocol_builtin.py).
    assert spec.applies_to("kv") and spec.applies_to("echo")
    assert spec.unmet(holder) == ("proto_needs_a_large_reply: declare a [protocol.large_reply] "
                                  "sequence in [[protocol]] 'kv' (p.toml)")


@pytest.mark.parametrize("args, words", [
    (["--targets", "{dir}/t.toml"], "t.toml:3: [[protocol]] 'kv': unknown key 'framng'"),
    (["--server-cmd", "srv -p {port}", "--profile", "kv"], "needs --protocols FILE"),
    (["--server-cmd", "srv -p {port}", "--profile", "kv", "--protocols", "{dir}/none.toml"],
     "cannot read the protocol file"),
])
def test_cli_refuses_bad_declarations_in_one_line(tmp_path, args, words):
    (tmp_path / "t.toml").write_text('[[protocol]]\nname = "kv"\nframng = "crlf"\n'
                                     '[[server]]\nname = "s"\nprofile = "kv"\n'
                                     'tcp = ["srv", "{port}"]\n')
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "sockspec", "run", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockspec: ") and words in lines[0], lines


# The "about 20 lines" declaration of an inline key-value server.
TWENTY_LINES = """\
[[protocol]]
name = "kv"
framing = "crlf"
[[protocol.exchange]]
name = "ping"
send = "PING"
expect = "+PONG"
[[protocol.exchange]]
name = "put"
send = "SET k {payload}"
expect = "+OK"
[[protocol.exchange]]
name = "get"
send = "GET k"
expect = "${payload}"
[protocol.properties]
answers_after_fin = true
keeps_connection = true
concurrent = true
[protocol.binary]
exchanges = ["put", "get"]
alphabet = "no-whitespace"
[protocol.large_reply]
exchanges = ["put", "get"]
"""


def test_a_twenty_line_declaration_gets_the_whole_generic_catalogue():
    from sockspec.catalogue import load_catalogue

    assert len(TWENTY_LINES.splitlines()) <= 25
    (protocol,) = parse(TWENTY_LINES)

    class Declared:
        pass

    target = Declared()
    target.protocol = protocol
    generic = [spec for spec in load_catalogue() if DECLARED in spec.profiles]
    families = {spec.family.name for spec in generic if spec.kind == "server"}
    assert {"basic", "concurrency", "partial-reads", "partial-writes", "half-close",
            "graceful-close", "client-abort", "restart", "backlog", "fd-leak",
            "binary-integrity", "latency", "latency-distribution", "connection-rate",
            "sustained-load", "concurrent-connections", "slow-client-isolation",
            "throughput"} <= families
    unmet = {spec.id: spec.unmet(target) for spec in generic if spec.unmet(target)}
    assert not unmet, unmet
