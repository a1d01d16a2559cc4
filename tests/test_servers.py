"""Starting servers under test: a port taken between allocation and bind is retried."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from sockspec.errors import ServerStartError
from sockspec.targets.servers import Target, builtin_targets
from sockspec.under_test.ports import PortAllocator
from sockspec.under_test.server import PORT_ATTEMPTS, StartPolicy, start_server

POLICY = StartPolicy(ready_timeout=10.0, lifetime=60.0)


class ScriptedPorts(PortAllocator):
    """Hands out the given ports first (as if each was free when probed), then real ones."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__()
        self.scripted = list(ports)
        self.handed_out: list[int] = []

    def allocate(self, host: str = "127.0.0.1") -> int:
        port = self.scripted.pop(0) if self.scripted else super().allocate(host)
        self.handed_out.append(port)
        return port


@pytest.fixture
def squatters() -> Iterator[list[int]]:
    """Ports that another process (here: this one) listens on, as a rival run's server would."""
    held = []
    for _ in range(PORT_ATTEMPTS):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        held.append(sock)
    yield [sock.getsockname()[1] for sock in held]
    for sock in held:
        sock.close()


def test_a_port_taken_before_the_server_binds_is_retried_on_another(squatters):
    ports = ScriptedPorts(squatters[:1])
    server = start_server(builtin_targets()["reference-echo"], "tcp", ports, POLICY)
    try:
        assert ports.handed_out[0] == squatters[0]
        assert server.address.port == ports.handed_out[1] != squatters[0]
        with socket.create_connection(server.address.sockaddr, 5) as client:
            client.sendall(b"ping")
            assert client.recv(4) == b"ping"
    finally:
        server.stop()


def test_every_port_taken_ends_in_one_clear_error(squatters):
    ports = ScriptedPorts(squatters)
    with pytest.raises(ServerStartError) as failure:
        start_server(builtin_targets()["reference-echo"], "tcp", ports, POLICY)
    message = str(failure.value)
    assert "\n" not in message and f"tried {PORT_ATTEMPTS} ports" in message
    assert ports.handed_out == squatters


def test_a_server_that_fails_on_its_own_is_not_retried():
    failing = Target(name="exits-at-once", profile="echo",
                     tcp=(sys.executable, "-c", "import sys; sys.exit('cannot listen')",
                          "{port}"),
                     unix=None, ipv6=False, cwd=".", source="test")
    ports = ScriptedPorts([])
    with pytest.raises(ServerStartError, match="cannot listen"):
        start_server(failing, "tcp", ports, POLICY)
    assert len(ports.handed_out) == 1
