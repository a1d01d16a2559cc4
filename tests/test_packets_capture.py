"""Real captures on the loopback interface: attribution, the kernel filter, pcap files, gaps.

Needs CAP_NET_RAW (root in CI); skipped with the reason otherwise.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time

import pytest
from packets_support import faulty_cmd, sockspec_run
from sockspec_runner import PROJECT

from sockspec.packets.capture import PacketCapture, capture_unavailable_reason, write_pcap
from sockspec.packets.summary import summarize
from sockspec.packets.summary_text import cite, describe
from sockspec.process import LaunchSpec, ServerProcess
from sockspec.reference.client import ping_pong
from sockspec.transport import TcpAddress
from sockspec.under_test.ports import PortAllocator

UNAVAILABLE = capture_unavailable_reason("lo")
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"{UNAVAILABLE}")

IO_TIMEOUT = 5.0
SETTLE_TIMEOUT = 2.0


def listener(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(8)
    sock.settimeout(IO_TIMEOUT)
    return sock


def wait_for(capture: PacketCapture, port: int, connections: int) -> None:
    """Bounded wait until ``connections`` connections have ended in the capture."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        summary = summarize(capture.snapshot_matching(), port)
        if len(summary.connections) >= connections and all(
                c.ended() for c in summary.connections):
            return
        time.sleep(0.005)


def serve_two_connections(server: socket.socket) -> None:
    """First: echo then close (FIN). Second: read 1 byte, then close with SO_LINGER {1, 0}."""
    conn, _ = server.accept()
    with conn:
        data = conn.recv(100)
        conn.sendall(data)
        conn.recv(100)  # the client's FIN
    conn, _ = server.accept()
    conn.recv(1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_fin_and_rst_are_attributed_and_the_pcap_reads_back(tmp_path):
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    with listener() as server:
        port = server.getsockname()[1]
        serving = threading.Thread(target=serve_two_connections, args=(server,))
        capture = PacketCapture("lo", port).start()
        try:
            serving.start()
            with socket.create_connection(("127.0.0.1", port), IO_TIMEOUT) as client:
                client.sendall(b"hello, capture")
                assert client.recv(100) == b"hello, capture"
            with socket.create_connection(("127.0.0.1", port), IO_TIMEOUT) as client:
                client.sendall(b"x")
                client.settimeout(IO_TIMEOUT)
                with pytest.raises(ConnectionResetError):
                    client.recv(10)
            serving.join(IO_TIMEOUT)
            wait_for(capture, port, connections=2)
        finally:
            result = capture.stop()
    summary = summarize(result.segments(), port)
    first, second = summary.connections
    assert first.client_side.fin_at is not None and first.server_side.fin_at is not None
    assert first.server_side.fin_after_bytes == len(b"hello, capture")
    assert first.client_side.rst_at is None and first.server_side.rst_at is None
    assert second.server_side.rst_at is not None and second.server_side.fin_at is None
    assert second.client_side.bytes_sent == 1
    assert "server RST at" in cite(summary, "ends")
    assert result.lost_packets == 0 and not result.truncated

    path = write_pcap(tmp_path / "two.pcap", result.frames)
    packets = rdpcap(str(path))
    assert len(packets) == len(result.frames) == summary.packets
    assert all(TCP in p and port in (p[TCP].sport, p[TCP].dport) for p in packets)
    # Each packet once: the copy leaving lo is filtered out in the kernel.
    assert sum(1 for p in packets if p[TCP].flags.S and not p[TCP].flags.A) == 2


def test_the_kernel_filter_keeps_only_the_port_over_ipv4_and_ipv6():
    with listener("::1") as watched, listener("127.0.0.1") as other:
        port = watched.getsockname()[1]
        capture = PacketCapture("lo", port).start()
        try:
            for server, host in ((watched, "::1"), (other, "127.0.0.1")):
                with socket.create_connection((host, server.getsockname()[1]), IO_TIMEOUT):
                    conn, _ = server.accept()
                    conn.close()
            wait_for(capture, port, connections=1)
        finally:
            result = capture.stop()
    segments = result.segments()
    assert segments, "nothing captured on ::1"
    assert all(port in (s.src.port, s.dst.port) for s in segments)
    assert all(s.src.host == "::1" for s in segments)


def test_a_nagle_stall_shows_as_a_gap_after_the_client_ack(tmp_path):
    """The faulty two-writes server: each reply's second write waits for a delayed ACK."""
    address = TcpAddress("127.0.0.1", PortAllocator().allocate())
    script = PROJECT / "fixtures" / "faulty" / "reply_in_two_writes.py"
    spec = LaunchSpec(argv=[sys.executable, str(script), "--profile", "echo", "-h",
                            address.host, "-p", str(address.port)],
                      cwd=str(PROJECT), address=address, name="two-writes")
    with ServerProcess.start(spec, log_dir=tmp_path, ready_timeout=IO_TIMEOUT, lifetime=60):
        capture = PacketCapture("lo", address.port).start()
        try:
            ping_pong(address, 100, 6, timeout=IO_TIMEOUT, nodelay=True)
            wait_for(capture, address.port, connections=1)
        finally:
            result = capture.stop()
    summary = summarize(result.segments(), address.port)
    stalled = [e for c in summary.connections for e in c.exchanges if e.nagle_stall()]
    # Quick-ACK mode hides the first round or two; the later ones wait ~40 ms each.
    assert stalled, describe(summary)
    assert summary.metrics()["packets_max_reply_gap_ms"] >= 30
    assert "stalled until the client's ACK" in cite(summary, "replies")


def test_a_failed_run_keeps_its_pcap_and_cites_the_packets(tmp_path):
    (record,) = sockspec_run(tmp_path, *faulty_cmd("reply_in_two_writes", "echo"), "latency")
    assert record["outcome"] == "failed"
    assert record["pcap"].startswith("pcaps/") and record["pcap"].endswith(".pcap")
    assert (tmp_path / record["pcap"]).stat().st_size > 24  # more than the pcap header
    assert "stalled until the client's ACK" in record["packet_summary"]
    assert "\npackets: " in record["evidence"]
    assert not any(name.startswith("packets") for name in record["metrics"])


def test_passing_items_keep_no_pcap_unless_asked_and_unix_items_say_why(tmp_path):
    quiet, asked = tmp_path / "quiet", tmp_path / "asked"
    (record,) = sockspec_run(quiet, "--target", "reference-echo", "--transport", "tcp",
                             "echo_basic")
    assert record["outcome"] == "passed" and not record["pcap"]
    assert not (quiet / "pcaps").exists()
    records = sockspec_run(asked, "--target", "reference-echo", "--transport", "tcp",
                           "--transport", "unix", "--capture", "echo_basic")
    by_transport = {r["transport"]: r for r in records}
    assert by_transport["tcp"]["outcome"] == by_transport["unix"]["outcome"] == "passed"
    assert (asked / by_transport["tcp"]["pcap"]).is_file()
    assert "connection 1" in by_transport["tcp"]["packet_summary"]
    assert by_transport["unix"]["pcap"] == ""
    assert "Unix stream sockets" in by_transport["unix"]["packet_summary"]


def test_no_capture_means_no_pcap_and_no_packet_facts(tmp_path):
    (record,) = sockspec_run(tmp_path, *faulty_cmd("reply_in_two_writes", "echo"),
                             "--no-capture", "latency")
    assert record["outcome"] == "failed"
    assert record["pcap"] == "" and record["packet_summary"] == ""
    assert "packets:" not in record["evidence"]
    assert not (tmp_path / "pcaps").exists()
