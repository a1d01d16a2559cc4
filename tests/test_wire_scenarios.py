"""Wire-level scenarios: the pure flow state, the namespace lab, and the proofs.

The flow tests need nothing. The rest needs root (namespaces, raw frames) and
is skipped with the reason otherwise; CI runs as root.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from packets_support import faulty_cmd, sockspec_run
from sockspec_runner import FAULTY_DIR, server_cmd

from sockspec.drivers.wire import wire_unavailable_reason
from sockspec.iproute import in_private_network_namespace
from sockspec.packets.frames import ACK, FIN, PSH, RST, SYN, Endpoint, Segment
from sockspec.packets.lab import wire_lab
from sockspec.packets.wire import WireFlow

SERVER = Endpoint("127.0.0.1", 8080)
CLIENT = Endpoint("10.1.2.2", 45000)
UNAVAILABLE = wire_unavailable_reason()
needs_lab = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")

WIRE_SCENARIOS = ("wire_echo_every_byte_a_segment", "wire_http_head_every_byte_a_segment",
                  "wire_echo_data_and_fin_in_one_segment",
                  "wire_http_request_and_fin_in_one_segment", "wire_segment_after_the_response",
                  "wire_reset_in_the_middle_of_a_response", "wire_backlog_syn_by_syn")


def from_server(flags: int, seq: int, ack: int, payload: int = 0) -> Segment:
    return Segment(0.0, SERVER, CLIENT, flags, seq % (1 << 32), ack % (1 << 32), 65535, payload)


def established_flow() -> WireFlow:
    flow = WireFlow(CLIENT.port, iss=100)
    flow.syn()
    answer = flow.receive(from_server(SYN | ACK, 5000, 101), b"", 0.0)
    assert answer is not None and (answer.flags, answer.seq, answer.ack) == (ACK, 101, 5001)
    return flow


def test_flow_numbers_follow_data_and_fin():
    flow = established_flow()
    first = flow.data(b"GET")
    second = flow.data(b" /", fin=True)
    assert (first.seq, first.flags) == (101, ACK | PSH)
    assert (second.seq, second.flags) == (104, ACK | PSH | FIN)
    assert flow.snd_nxt == 107 and flow.unacknowledged == 6
    flow.receive(from_server(ACK, 5001, 107), b"", 0.0)
    assert flow.unacknowledged == 0
    assert flow.reset().seq == 107 and flow.reset().flags & RST


def test_flow_reassembles_in_order_and_acknowledges_fin():
    flow = established_flow()
    assert flow.receive(from_server(ACK | PSH, 5001, 101, 5), b"hello", 0.0).ack == 5006
    # A retransmission of what we already have gets a duplicate ACK and changes nothing.
    assert flow.receive(from_server(ACK | PSH, 5001, 101, 5), b"hello", 0.0).ack == 5006
    answer = flow.receive(from_server(ACK | FIN, 5006, 101, 6), b" world", 0.1)
    assert bytes(flow.received) == b"hello world" and flow.server_fin
    assert answer.ack == 5013  # 6 bytes and the FIN
    assert flow.events == [(0.1, "server FIN after 11 bytes")]


def test_flow_wraps_sequence_numbers_and_notes_rst():
    flow = WireFlow(CLIENT.port, iss=(1 << 32) - 2)
    assert flow.syn().seq == (1 << 32) - 2
    flow.receive(from_server(SYN | ACK, (1 << 32) - 1, (1 << 32) - 1), b"", 0.0)
    assert flow.data(b"abcd").seq == (1 << 32) - 1 and flow.snd_nxt == 3
    assert flow.receive(from_server(ACK, 0, 3, 2), b"ok", 0.0).ack == 2
    flow.receive(from_server(RST, 2, 3), b"", 0.5)
    assert flow.server_rst and flow.events[-1] == (0.5, "server RST after 2 bytes")


def test_flow_closes_its_window_once_it_has_read_enough():
    flow = established_flow()
    flow.close_window_at = 4
    assert flow.receive(from_server(ACK, 5001, 101, 3), b"abc", 0.0).window == 65535
    assert flow.receive(from_server(ACK, 5004, 101, 3), b"def", 0.0).window == 0


def test_a_syn_ack_for_another_syn_is_ignored():
    flow = WireFlow(CLIENT.port, iss=100)
    flow.syn()
    assert flow.receive(from_server(SYN | ACK, 5000, 999), b"", 0.0) is None
    assert not flow.established


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=10).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@needs_lab
def test_the_lab_is_deleted_even_when_its_user_fails():
    with pytest.raises(RuntimeError), wire_lab() as lab:
        assert lab.namespace in namespaces()
        # The phantom address is nobody's: not even inside the namespace.
        addresses = lab.run_in(lambda: subprocess.run(
            ["ip", "-o", "addr"], capture_output=True, text=True, timeout=10).stdout)
        assert lab.phantom not in addresses
        raise RuntimeError("the scenario failed")
    assert lab.namespace not in namespaces()


@needs_lab
def test_the_ipv6_lab_gives_the_server_an_address_and_the_phantom_none():
    with wire_lab(ipv6=True) as lab:
        assert lab.ipv6 and lab.server_host.endswith("::1") and lab.phantom.endswith("::2")
        addresses = lab.run_in(lambda: subprocess.run(
            ["ip", "-o", "-6", "addr", "show", "dev", lab.server_interface],
            capture_output=True, text=True, timeout=10).stdout)
        assert f"{lab.server_host}/128" in addresses and lab.phantom not in addresses
        # Inside, any address may be served; outside, only loopback.
        assert lab.run_in(in_private_network_namespace)
        assert not in_private_network_namespace()
    assert lab.namespace not in namespaces()


@needs_lab
def test_the_reference_servers_pass_every_wire_scenario(tmp_path):
    results = sockspec_run(tmp_path, "--target", "reference-echo", "--target",
                           "reference-http", *WIRE_SCENARIOS)
    outcomes = {(r["scenario"], r["target"], r["transport"]): r["outcome"] for r in results}
    for transport in ("tcp", "tcp6"):
        ran = {k: v for k, v in outcomes.items() if k[2] == transport}
        # 7 scenarios; the SYN-level backlog one applies to both profiles.
        assert len(ran) == 8 and set(ran.values()) == {"passed"}, outcomes
    skipped = {k: v for k, v in outcomes.items() if k[2] == "unix"}
    assert skipped and set(skipped.values()) == {"skipped"}
    assert all("no segments to craft" in r["evidence"] for r in results
               if r["transport"] == "unix")


# Each faulty server, and the wire scenario that must catch it (in its own family).
PROOFS = [
    ("one_recv_echo", "echo", "wire_echo_every_byte_a_segment"),
    ("one_recv_http", "http", "wire_http_head_every_byte_a_segment"),
    ("head_end_in_newest_chunk_http", "http", "wire_http_head_every_byte_a_segment"),
    ("reply_lost_at_eof", "echo", "wire_echo_data_and_fin_in_one_segment"),
    ("drains_only_buffered_http", "http", "wire_segment_after_the_response"),
    ("close_without_drain_http", "http", "wire_segment_after_the_response"),
    ("sigpipe_default_http", "http", "wire_reset_in_the_middle_of_a_response"),
    ("listen_backlog_one", "echo", "wire_backlog_syn_by_syn"),
]


@needs_lab
@pytest.mark.parametrize("faulty, profile, scenario", PROOFS,
                         ids=[f"{p[0]}-{p[2]}" for p in PROOFS])
def test_a_wire_scenario_fails_its_faulty_server(tmp_path, faulty, profile, scenario):
    (record,) = sockspec_run(tmp_path, *faulty_cmd(faulty, profile), scenario)
    assert record["outcome"] == "failed", record["evidence"]
    assert record["evidence"].strip()
    # The evidence rests on the packets: the capture inside the namespace is kept.
    assert record["pcap"] and (tmp_path / record["pcap"]).is_file()
    assert "captured on swa" in record["packet_summary"]


@needs_lab
def test_the_late_segment_waits_for_a_slow_server_to_close(tmp_path):
    """The faulty server paused 0.3 s between its FIN and its drain, as one not
    scheduled for a while is: the late segment must still meet a closed socket.
    (Sent as soon as the FIN arrived, it was read by the drain, and the defect passed.)"""
    wrapper = tmp_path / "drains_only_buffered_after_a_pause.py"
    wrapper.write_text(
        "import signal, sys\n"
        f"sys.path.insert(0, {str(FAULTY_DIR)!r})\n"
        "import drains_only_buffered_http as faulty\n"
        "from sockspec.reference import connection, server\n"
        "faulty.PAUSE_AFTER_FIN_S = 0.3\n"
        "connection.close_gracefully = faulty.drain_what_is_queued\n"
        "signal.alarm(600)\n"
        "sys.exit(server.main())\n")
    (record,) = sockspec_run(tmp_path, *server_cmd(wrapper, "http", "tcp"), "--transport", "tcp",
                             "wire_segment_after_the_response")
    assert record["outcome"] == "failed", record["evidence"]
    waited = re.search(r"server let go before the late segment: yes, ([0-9.]+) s", record["evidence"])
    assert waited and float(waited.group(1)) >= 0.3, record["evidence"]


@needs_lab
def test_a_wire_scenario_fails_its_faulty_server_over_ipv6_too(tmp_path):
    (record,) = sockspec_run(tmp_path, *faulty_cmd("one_recv_echo", "echo", "tcp6"),
                             "wire_echo_every_byte_a_segment")
    assert record["transport"] == "tcp6"
    assert record["outcome"] == "failed", record["evidence"]
    # one recv() keeps the first byte, or the first few on a busy machine
    came_back = re.search(r"(\d+) bytes came back where 40 were sent", record["evidence"])
    assert came_back and int(came_back.group(1)) < 40, record["evidence"]
    assert re.search(r"client \[fd[0-9a-f:]+::2\]:\d+ -> server \[fd[0-9a-f:]+::1\]",
                     record["packet_summary"]), record["packet_summary"]


@needs_lab
def test_syn_level_and_sigstop_methods_measure_the_same_accept_queue(tmp_path):
    """listen(1): both methods see a queue of 2; the reference: both see every connection."""
    faulty = sockspec_run(tmp_path / "faulty", *faulty_cmd("listen_backlog_one", "echo"),
                          "backlog")
    depth = {r["scenario"]: r["metrics"] for r in faulty}
    assert depth["backlog_burst_while_paused"]["accept_queue_depth"] == 2
    assert depth["wire_backlog_syn_by_syn"]["accept_queue_depth_syn"] == 2
    reference = sockspec_run(tmp_path / "reference", "--target", "reference-echo",
                             "--transport", "tcp", "backlog")
    depth = {r["scenario"]: r["metrics"] for r in reference}
    assert depth["backlog_burst_while_paused"]["accept_queue_depth"] == 16
    assert depth["wire_backlog_syn_by_syn"]["accept_queue_depth_syn"] == 17  # a lower bound
