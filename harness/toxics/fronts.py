"""Relays in front of the addresses an item uses: the glue between the relay and the
``server`` and ``client`` fixtures.

A server under test gets one relay in front of its address for the item, and the
scenario sees the relay's address (RelayedServer). A client under test is pointed
at a relay in front of each server the harness plays for it (ClientUnderTest asks
``route`` for the address to give the client).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sockspec.toxics.relay import Relay, relay_address
from sockspec.toxics.spec import ToxicProfile
from sockspec.transport import Address, TcpAddress
from sockspec.under_test.ports import PortAllocator, make_socket_dir, remove_socket_dir


@dataclass
class Fronts:
    """The relays of one item: ``profile`` with ``seed``; ``key`` names the item in the
    random draws (its target, transport and scenario), so a rerun draws the same."""

    profile: ToxicProfile
    seed: int
    key: str
    allocator: PortAllocator
    relays: dict[Address, Relay] = field(default_factory=dict)
    _dirs: list[str] = field(default_factory=list)

    def front(self, upstream: Address, *, program_upstream: bool) -> Address:
        """Start a relay in front of ``upstream``; its address."""
        directory = make_socket_dir()
        self._dirs.append(directory)
        port = self.allocator.allocate(upstream.host) if isinstance(upstream, TcpAddress) else 0
        key = self.key if not self.relays else f"{self.key}#{len(self.relays) + 1}"
        relay = Relay(relay_address(upstream, directory, port), upstream, self.profile,
                      seed=self.seed, key=key, program_upstream=program_upstream).start()
        self.relays[upstream] = relay
        return relay.address

    def route(self, address: Address) -> Address:
        """The relay's address in front of ``address``, if there is one."""
        relay = self.relays.get(address)
        return relay.address if relay is not None else address

    def describe(self) -> list[str]:
        return [line for relay in self.relays.values() for line in relay.describe()]

    def close(self) -> None:
        for relay in self.relays.values():
            relay.stop()
        for directory in self._dirs:
            remove_socket_dir(directory)
        self.relays.clear()
        self._dirs.clear()


class RelayedServer:
    """A server under test as a scenario sees it through a relay: its own attributes
    and methods (process control included), but the relay's ``address``."""

    def __init__(self, server: object, address: Address) -> None:
        self._server = server
        self.address = address

    def __getattr__(self, name: str) -> object:
        return getattr(self._server, name)
