"""Wire-level scenarios' shared setup: the target in a private namespace, a crafted client.

``wire_session(server, packet_evidence)`` builds a sockspec.packets.lab.WireLab,
starts a second copy of the server under test inside it (same target, same
command line, listening on 127.0.0.1 of the namespace, or for tcp6 on an IPv6
address of it), records the packets on the server's veth end, and opens a
sockspec.packets.wire.WireClient. On exit it
hands the capture to the ``packet_evidence`` fixture (so the pcap and the
packet summary land in the results like any capture), stops the server and
deletes the namespace, whatever happened.

When this machine cannot do it (not root, no `ip`, no AF_PACKET), the scenario
is skipped with a reason naming what is missing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from sockspec.drivers.load import Probe, probe_service
from sockspec.drivers.peer import has_read, peer_socket_at
from sockspec.packets.capture import CaptureUnavailable, PacketCapture, capture_unavailable_reason
from sockspec.packets.lab import WireLab, WireLabUnavailable, unavailable_reason, wire_lab
from sockspec.packets.wire import WireClient, WireFlow
from sockspec.under_test.ports import PortAllocator
from sockspec.under_test.server import ServerUnderTest, start_server

# The server's last packets (its FIN, an RST) arrive within microseconds on a
# veth; this only covers a busy machine before the capture is stopped.
CAPTURE_SETTLE_S = 0.01


@dataclass
class WireSession:
    lab: WireLab
    server: ServerUnderTest        # the copy running inside the namespace
    client: WireClient

    @property
    def port(self) -> int:
        return self.server.address.port

    def connect(self, timeout: float) -> WireFlow:
        """A crafted connection with its handshake done; fails the scenario if refused."""
        flow = self.client.flow()
        if not self.client.connect(flow, timeout):
            from sockspec.verdict import fail

            fail(f"the server in the namespace did not answer a SYN within {timeout:g} s",
                 **self.server_facts())
        if flow.server_rst:
            from sockspec.verdict import fail

            fail("the server refused the connection (RST to the SYN)", **self.server_facts())
        return flow

    def server_has_read(self, flow: WireFlow, sent: int) -> bool | None:
        """The server has read the first ``sent`` bytes of ``flow`` (its copied_seq, as
        sock_diag inside the namespace reports it); None when its socket is gone."""
        family = socket.AF_INET6 if self.lab.ipv6 else socket.AF_INET
        return has_read(lambda: self.lab.run_in(lambda: peer_socket_at(
            family, (self.lab.server_host, self.port), (self.lab.phantom, flow.client_port))),
            sent)

    def probe(self, timeout: float) -> Probe:
        """One ordinary request from inside the namespace (socket API, not crafted)."""
        return self.lab.run_in(lambda: probe_service(self.server, timeout))

    def server_facts(self) -> dict[str, object]:
        """The namespace copy's state: the plugin reports the shared server's, not this one's.

        With how long the harness waited for the server so far, and what the crafted
        host answered for connections it did not have (the server connecting back).
        """
        facts = self.server.facts()
        found: dict[str, object] = {
            "server_in_namespace": facts.get("server_state", "?"),
            "namespace_server_stderr_tail": facts.get("stderr_tail", "(none)"),
            "harness_waited": self.client.wait_words()}
        host = self.client.host_words()
        if host:
            found["crafted_host"] = host
        return found


def wire_unavailable_reason() -> str | None:
    reason = unavailable_reason()
    if reason is None:
        reason = capture_unavailable_reason("lo")
        if reason:
            reason = f"wire-level scenarios send raw frames: {reason}"
    return reason


@contextmanager
def wire_session(server: ServerUnderTest, packet_evidence) -> Iterator[WireSession]:
    """The target started again inside a fresh namespace, with a capture and a wire client."""
    reason = wire_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        try:
            lab = stack.enter_context(wire_lab(ipv6=server.transport == "tcp6"))
        except WireLabUnavailable as exc:
            pytest.skip(f"cannot build the namespace for wire-level scenarios: {exc}")
        # The namespace is new and the lab's alone: any slice of ports is free there.
        inner = lab.run_in(lambda: start_server(server.target, server.transport,
                                                PortAllocator(worker=0), server.policy,
                                                host=lab.server_host))
        stack.callback(inner.stop)
        try:
            capture = PacketCapture(lab.server_interface, inner.address.port,
                                    skip_outgoing=False, run_in=lab.run_in).start()
        except CaptureUnavailable as exc:
            pytest.skip(f"cannot capture inside the namespace: {exc}")

        def hand_over_capture() -> None:
            time.sleep(CAPTURE_SETTLE_S)
            packet_evidence.attach(capture.stop(), inner.address.port)
            note = (f"captured on {lab.server_interface}, the server's end of a veth pair in "
                    f"the private namespace {lab.namespace}; the crafted client is "
                    f"{lab.phantom}")
            if clients:
                note += f"\nharness: {clients[0].wait_words()}"
                host = clients[0].host_words()
                if host:
                    note += f"\n{host}"
            packet_evidence.note(note)

        clients: list[WireClient] = []
        stack.callback(hand_over_capture)
        client = stack.enter_context(WireClient(lab, inner.address.port))
        clients.append(client)
        yield WireSession(lab, inner, client)
