"""A private multi-host lab: network namespaces joined by veth pairs and a bridge.

Layout (``netns_lab(generators=2)``)::

    [server ns]  bridge ssbr with 10.A.B.1/24
        |-- veth ssvNs ====== ssvNg [generator ns N]  10.A.B.(10+N)/24

Everything is created inside the namespaces (``ip link add ... netns X type
veth peer ... netns Y``), so no interface or address ever exists in the
initial namespace, and the namespaces have no route anywhere else: traffic to
10.A.B.x can only reach the lab. Names carry the pid and a random tag, so
parallel runs never collide, and the context manager deletes every namespace
it created even when the body fails (deleting a namespace deletes its veth
ends; stop the processes inside first, or the namespace outlives its name).

Processes run inside with ``ip netns exec NS ...``; execnet generators with
the gateway spec from ``LabHost.python_spec()``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sockspec.cleanup import forget_namespace, namespace_name, register_namespace
from sockspec.errors import SockspecError
from sockspec.iproute import IP_COMMAND_TIMEOUT_S, run_ip

IFNAMSIZ = 16  # interface names hold at most 15 characters plus the NUL


class LabError(SockspecError):
    """The namespace lab could not be built (no `ip`, not root, no netns support)."""


@dataclass(frozen=True)
class LabHost:
    namespace: str
    address: str               # its IPv4 address inside the lab
    interface: str             # its lab-facing interface (bridge or veth end)

    def python_spec(self, python: str = sys.executable) -> str:
        """execnet gateway spec for a Python interpreter inside this namespace."""
        return f"popen//python=ip netns exec {self.namespace} {python}"

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass(frozen=True)
class LabLayout:
    tag: str
    server: LabHost
    generators: tuple[LabHost, ...]
    server_ports: tuple[str, ...]     # the bridge ports (veth ends) in the server namespace
    prefix_length: int = 24

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.server.namespace, *(g.namespace for g in self.generators))


def lab_layout(tag: str, generators: int, subnet: tuple[int, int]) -> LabLayout:
    """Names and addresses of a lab (pure): subnet (A, B) gives 10.A.B.0/24."""
    if not 1 <= generators <= 200:
        raise LabError(f"a lab has 1-200 generator namespaces, not {generators}")
    if not (0 <= subnet[0] <= 255 and 0 <= subnet[1] <= 255):
        raise LabError(f"bad subnet octets {subnet}")
    net = f"10.{subnet[0]}.{subnet[1]}"
    # sockspec-<pid>-...: found and deleted by `sockspec clean` if the harness is killed.
    server = LabHost(namespace_name(f"{tag}-srv"), f"{net}.1", f"ssbr{tag}")
    hosts = tuple(LabHost(namespace_name(f"{tag}-g{i}"), f"{net}.{10 + i}", f"ssv{tag}g{i}")
                  for i in range(generators))
    ports = tuple(f"ssv{tag}s{i}" for i in range(generators))
    for name in (server.interface, *(h.interface for h in hosts), *ports):
        if len(name) >= IFNAMSIZ:
            raise LabError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} characters")
    return LabLayout(tag, server, hosts, ports)


def unavailable_reason() -> str | None:
    """Why a lab cannot be built here, or None. Checks `ip` and root."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    return None


def _ip(*args: str) -> None:
    run_ip(*args, error=LabError)


def existing_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=IP_COMMAND_TIMEOUT_S).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def build(layout: LabLayout) -> None:
    """Create namespaces, bridge, veth pairs and addresses (raises LabError)."""
    server = layout.server
    for namespace in layout.namespaces:
        register_namespace(namespace)  # deleted at exit at the latest (sockspec.cleanup)
        _ip("netns", "add", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
    _ip("-n", server.namespace, "link", "add", server.interface, "type", "bridge")
    _ip("-n", server.namespace, "addr", "add", f"{server.address}/{layout.prefix_length}",
        "dev", server.interface)
    _ip("-n", server.namespace, "link", "set", server.interface, "up")
    for host, port in zip(layout.generators, layout.server_ports, strict=True):
        _ip("link", "add", host.interface, "netns", host.namespace, "type", "veth",
            "peer", "name", port, "netns", server.namespace)
        _ip("-n", server.namespace, "link", "set", port, "master", server.interface)
        _ip("-n", server.namespace, "link", "set", port, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/{layout.prefix_length}",
            "dev", host.interface)
        _ip("-n", host.namespace, "link", "set", host.interface, "up")


def teardown(layout: LabLayout) -> list[str]:
    """Delete every namespace of the lab that exists; return the ones that failed."""
    present = existing_namespaces()
    failed = []
    for namespace in layout.namespaces:
        if namespace not in present:
            continue
        try:
            _ip("netns", "del", namespace)
        except LabError:
            failed.append(namespace)
    for namespace in layout.namespaces:
        if namespace not in failed:
            forget_namespace(namespace)
    return failed


@contextmanager
def netns_lab(generators: int = 2) -> Iterator[LabLayout]:
    """Build a lab with a random tag and subnet; always delete it afterwards."""
    reason = unavailable_reason()
    if reason:
        raise LabError(f"cannot build a namespace lab: {reason}")
    tag = f"{os.getpid() % 10000:04d}{secrets.token_hex(2)}"
    subnet = (200 + secrets.randbelow(50), secrets.randbelow(256))
    layout = lab_layout(tag, generators, subnet)
    try:
        build(layout)
        yield layout
    finally:
        failed = teardown(layout)
        if failed:
            raise LabError(f"could not delete namespaces {failed}")
