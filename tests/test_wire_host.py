"""The wire lab's crafted client address behaves like a host: what is not its own
connection gets an RST (RFC 9293 3.10.7.1), so a server that connects back to its
client (an RFC 1413 ident lookup to port 113) is refused at once, as on loopback.

The reset rules need nothing; the rest needs root (namespaces, raw frames) and
is skipped with the reason otherwise; CI runs as root. Every namespace made is
deleted: checked with `ip netns list` around each lab test.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time

import pytest
from packets_support import sockspec_run
from sockspec_runner import PROJECT, server_cmd

from sockspec.drivers.wire import wire_unavailable_reason
from sockspec.packets.capture import attach_filter, port_filter
from sockspec.packets.frames import ACK, FIN, PSH, RST, SYN, Endpoint, Segment, parse_frame
from sockspec.packets.lab import WireLab, wire_lab
from sockspec.packets.wire import WireClient, reset_for

UNAVAILABLE = wire_unavailable_reason()
needs_lab = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")
IDENT_SERVER = PROJECT / "fixtures" / "servers" / "ident_lookup.py"
SERVER_PORT = 8080
# Bounds that only catch a hang: an RST comes back within microseconds on a veth.
ANSWER_TIMEOUT_S = 5.0


def segment(flags: int, seq: int, ack: int = 0, payload: int = 0) -> Segment:
    return Segment(0.0, Endpoint("127.0.0.1", 40000), Endpoint("10.1.2.2", 113), flags, seq,
                   ack, 65535, payload)


def test_a_closed_port_resets_as_rfc_9293_says():
    syn = reset_for(segment(SYN, 1000))
    assert (syn.flags, syn.seq, syn.ack) == (RST | ACK, 0, 1001)   # as Linux: RST|ACK, seq 0
    fin_data = reset_for(segment(FIN | PSH, (1 << 32) - 2, payload=5))
    assert (fin_data.flags, fin_data.seq, fin_data.ack) == (RST | ACK, 0, 4)  # wraps
    with_ack = reset_for(segment(ACK | PSH, 1000, ack=777, payload=10))
    assert (with_ack.flags, with_ack.seq) == (RST, 777)
    assert reset_for(segment(RST | ACK, 1000, ack=5)) is None     # never an RST to an RST


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=10).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def creator_gone_or_us(namespace: str) -> bool:
    """A namespace named sockspec-PID-... whose PID is this process or no process at all.

    Other helpers' live runs create namespaces meanwhile; those are not ours."""
    parts = namespace.split("-")
    if len(parts) < 2 or parts[0] != "sockspec" or not parts[1].isdigit():
        return True
    pid = int(parts[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@pytest.fixture
def no_namespace_left():
    before = namespaces()
    yield
    left = {n for n in namespaces() - before if creator_gone_or_us(n)}
    assert not left, f"namespaces left behind: {sorted(left)}"


def connect_back(lab: WireLab) -> tuple[str, float]:
    """From inside the namespace, as the server: connect to the crafted host's port 113."""
    def attempt() -> tuple[str, float]:
        family = socket.AF_INET6 if lab.ipv6 else socket.AF_INET
        began = time.monotonic()
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(ANSWER_TIMEOUT_S)
            sock.bind((lab.server_host, 0))
            try:
                sock.connect((lab.phantom, 113))
            except ConnectionRefusedError:
                return "refused", time.monotonic() - began
            except TimeoutError:
                return "timed out", time.monotonic() - began
        return "connected", time.monotonic() - began

    return lab.run_in(attempt)


@needs_lab
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_a_syn_to_a_port_the_crafted_host_does_not_own_is_refused(ipv6, no_namespace_left):
    with wire_lab(ipv6=ipv6) as lab, WireClient(lab, SERVER_PORT) as client:
        outcome, _ = connect_back(lab)
        assert outcome == "refused"
        assert client.host_answer_count == 1
        words = client.host_words()
        assert f"the crafted host {lab.phantom} answered 1 segment" in words, words
        assert "S from " in words and "to port 113 got RST|ACK" in words, words


def raw_answer(lab: WireLab, client: WireClient, sport: int, flags: int, seq: int,
               ack: int) -> Segment | None:
    """Send one crafted segment from the server's end to the crafted host; its answer."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    frame = bytes(Ether(src=lab.server_mac, dst=lab.client_mac)
                  / IP(src=lab.server_host, dst=lab.phantom)
                  / TCP(sport=sport, dport=999, flags=flags, seq=seq, ack=ack))

    def open_socket() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        attach_filter(sock, port_filter(sport, 256, skip_outgoing=True))
        sock.bind((lab.server_interface, 0x0003))
        return sock

    with lab.run_in(open_socket) as sock:
        sock.send(frame)
        # Segments from the server's own port are the flows' socket's: read it meanwhile.
        client.pump(ANSWER_TIMEOUT_S, lambda: client.host_answer_count > 0)
        if not select.select([sock], [], [], ANSWER_TIMEOUT_S)[0]:
            return None
        return parse_frame(sock.recv(256), 0.0)


@needs_lab
@pytest.mark.parametrize("sport", [SERVER_PORT, 45000], ids=["server-port", "other-port"])
def test_a_segment_for_no_connection_of_the_crafted_host_is_reset(sport, no_namespace_left):
    with wire_lab() as lab, WireClient(lab, SERVER_PORT) as client:
        answer = raw_answer(lab, client, sport, ACK | PSH, 5000, 777)
        assert answer is not None, "no answer to a segment for an unknown connection"
        assert (answer.flags, answer.seq) == (RST, 777)
        assert (answer.src.host, answer.src.port) == (lab.phantom, 999)
        assert answer.dst.port == sport


@needs_lab
@pytest.mark.parametrize("profile", ["echo", "http"])
def test_wire_scenarios_pass_on_a_server_that_connects_back(tmp_path, profile,
                                                             no_namespace_left):
    """Its ident lookup is refused at once, as on loopback; it then serves correctly."""
    scenarios = {"echo": ["wire_echo_every_byte_a_segment",
                          "wire_echo_data_and_fin_in_one_segment", "wire_backlog_syn_by_syn"],
                 "http": ["wire_http_head_every_byte_a_segment",
                          "wire_http_request_and_fin_in_one_segment",
                          "wire_segment_after_the_response",
                          "wire_reset_in_the_middle_of_a_response"]}[profile]
    results = sockspec_run(tmp_path, *server_cmd(IDENT_SERVER, profile, "tcp"),
                           "--transport", "tcp", "--transport", "tcp6", "--capture",
                           *scenarios)
    outcomes = {(r["scenario"], r["transport"]): r["outcome"] for r in results}
    assert len(outcomes) == 2 * len(scenarios), outcomes
    assert set(outcomes.values()) == {"passed"}, [r["evidence"] for r in results]
    for record in results:
        summary = record["packet_summary"]
        assert "harness: waited " in summary, summary
        if record["scenario"] != "wire_backlog_syn_by_syn":   # accepts only after it ends
            assert "for connections it did not have with RST" in summary, summary
            assert "to port 113 got RST|ACK" in summary, summary
