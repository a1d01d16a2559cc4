"""A private network namespace where a wire-level client can reach a server under test.

Layout (one namespace, one veth pair, both ends inside it)::

    server under test, listening on 127.0.0.1:PORT as usual
        |  route_localnet=1 on the server end, so 127.0.0.1 is reachable from it
    [veth server end] ======== [veth client end]  <- AF_PACKET socket of the wire client
                                                   sends as PHANTOM (10.A.B.2)

The crafted connection's address, PHANTOM, belongs to no interface: the server
reaches it through a /32 route and a permanent neighbour entry (the client
end's MAC), and the kernel that receives the server's answers on the client
end drops them without a word, because the address is not its own and IP
forwarding is off in a new namespace (ip_error() sends no ICMP then). So the
kernel never answers for the crafted connection (no RST to a SYN-ACK it did not
expect), without any firewall rule: no nftables or iptables tool is needed.
The crafted host still behaves like a host: sockspec.packets.wire.WireClient
answers every segment for a connection it does not have with RST (RFC 9293),
so a server connecting back to its client (an ident lookup to port 113) is
refused at once instead of waiting for a SYN-ACK that never comes.

Packets stay inside the namespace: it has no other interface and no route out.
The server runs with its ordinary command line and address; it is started
from a thread that has joined the namespace (setns applies to one thread, and
a child inherits its parent thread's namespace), so the harness's readiness
check connects to 127.0.0.1 inside the namespace. The namespace is deleted on
exit, after the server has been stopped.

IPv6 (``wire_lab(ipv6=True)``): ::1 arriving on a non-loopback interface is
always dropped (there is no route_localnet for IPv6), so the server listens on
a unique local address of the namespace instead (SERVER, fdXX:...::1/128 on the
server end, no DAD) and the phantom is ...::2. The client end keeps IPv6
disabled, so its kernel ignores the server's answers just as silently.
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import os
import secrets
import shutil
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sockspec.cleanup import forget_namespace, namespace_name, register_namespace
from sockspec.errors import SockspecError
from sockspec.iproute import run_ip

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
SIOCGIFHWADDR = 0x8927
NAMESPACE_DIR = "/var/run/netns"
SERVER_HOST = "127.0.0.1"


class WireLabUnavailable(SockspecError):
    """The namespace lab cannot be built here (not root, no `ip`, no setns)."""


@dataclass(frozen=True)
class WireLab:
    namespace: str
    server_interface: str     # the veth end next to the server (route_localnet on)
    client_interface: str     # the veth end the wire client sends and receives on
    server_mac: str
    client_mac: str
    phantom: str              # the crafted connection's address: no interface has it
    server_host: str = SERVER_HOST   # what the server listens on inside the namespace

    @property
    def ipv6(self) -> bool:
        return ":" in self.server_host

    def run_in(self, function: Callable[[], T]) -> T:
        """Run ``function`` in a thread that has joined the namespace; return its result.

        Sockets it creates stay in the namespace; processes it starts live there.
        """
        return run_in_namespace(self.namespace, function)


def unavailable_reason() -> str | None:
    """Why a wire lab cannot be built, or None. Checks root, `ip`, setns."""
    if os.geteuid() != 0:
        return ("wire-level scenarios need root: network namespaces need CAP_SYS_ADMIN and "
                "CAP_NET_ADMIN, crafted packets CAP_NET_RAW")
    if shutil.which("ip") is None:
        return "wire-level scenarios need the `ip` command (Debian package iproute2)"
    if not hasattr(_libc(), "setns"):
        return "wire-level scenarios need setns() in the C library"
    return None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def run_in_namespace(namespace: str, function: Callable[[], T]) -> T:
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(os.path.join(NAMESPACE_DIR, namespace), os.O_RDONLY)
            try:
                if _libc().setns(fd, CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise WireLabUnavailable(f"setns into {namespace}: {os.strerror(error)}")
            finally:
                os.close(fd)
            outcome["value"] = function()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{namespace}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def _ip(*args: str) -> None:
    run_ip(*args, error=WireLabUnavailable)


def _hardware_address(interface: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        answer = fcntl.ioctl(probe.fileno(), SIOCGIFHWADDR,
                             struct.pack("256s", interface.encode()))
    return ":".join(f"{b:02x}" for b in answer[18:24])


def _write_sysctl(name: str, value: str) -> None:
    # /proc/sys/net belongs to the namespace of the thread that opens it.
    with open(os.path.join("/proc/sys", name), "w") as f:
        f.write(value)


@contextmanager
def wire_lab(*, ipv6: bool = False) -> Iterator[WireLab]:
    """Build a namespace with a veth pair and a phantom peer; always delete it."""
    reason = unavailable_reason()
    if reason:
        raise WireLabUnavailable(reason)
    tag = f"{os.getpid() % 100000:05d}{secrets.token_hex(2)}"
    # sockspec-<pid>-wire-...: found and deleted by `sockspec clean` if we are killed.
    namespace = namespace_name(f"wire-{tag}")
    server_if, client_if = f"swa{tag}", f"swb{tag}"   # at most 15 characters (IFNAMSIZ)
    if ipv6:
        # A random unique local /64 (fd00::/8), written as `ip` prints it.
        network = ipaddress.IPv6Address((0xFD << 120) | (secrets.randbits(56) << 64))
        server_host, phantom = str(network + 1), str(network + 2)
        prefix_len = "128"
    else:
        server_host = SERVER_HOST
        phantom = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.2"
        prefix_len = "32"
    register_namespace(namespace)  # deleted at exit at the latest (sockspec.cleanup)
    try:
        _ip("netns", "add", namespace)
    except BaseException:
        forget_namespace(namespace)
        raise
    try:
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "add", server_if, "type", "veth", "peer", "name", client_if)
        for interface in (server_if, client_if):
            _ip("-n", namespace, "link", "set", interface, "up")

        def configure() -> tuple[str, str]:
            # 127.0.0.1 as a destination arriving on the veth: allowed by route_localnet.
            _write_sysctl(f"net/ipv4/conf/{server_if}/route_localnet", "1")
            _write_sysctl("net/ipv4/conf/all/route_localnet", "1")
            # No IPv6 chatter (router solicitations, DAD) on the wire we record; with
            # ipv6 the server end has it, quietly, and the client end still does not.
            for interface in (server_if, client_if):
                _write_sysctl(f"net/ipv6/conf/{interface}/disable_ipv6", "1")
            if ipv6:
                for name, value in (("accept_dad", "0"), ("router_solicitations", "0"),
                                    ("disable_ipv6", "0")):
                    _write_sysctl(f"net/ipv6/conf/{server_if}/{name}", value)
            return _hardware_address(server_if), _hardware_address(client_if)

        server_mac, client_mac = run_in_namespace(namespace, configure)
        if ipv6:
            _ip("-n", namespace, "-6", "addr", "add", f"{server_host}/128", "dev", server_if,
                "nodad")
        _ip("-n", namespace, "route", "add", f"{phantom}/{prefix_len}", "dev", server_if)
        _ip("-n", namespace, "neigh", "add", phantom, "lladdr", client_mac, "dev", server_if,
            "nud", "permanent")
        yield WireLab(namespace, server_if, client_if, server_mac, client_mac, phantom,
                      server_host)
    finally:
        try:
            _ip("netns", "del", namespace)
        finally:
            forget_namespace(namespace)
