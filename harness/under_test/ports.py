"""Ports and Unix socket paths that parallel workers never share.

Ports come from below the kernel's ephemeral range (ip_local_port_range), so a
client's automatically chosen source port can never take a server's port, and
each pytest-xdist worker draws from its own slice of that range.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass, field

from sockspec.cleanup import make_workdir, remove_workdir
from sockspec.errors import SockspecError

PORT_FLOOR = 20000
MAX_WORKERS = 64


def worker_index() -> int:
    """0 for a plain run, N for pytest-xdist worker gwN."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = name.removeprefix("gw")
    return int(digits) % MAX_WORKERS if digits.isdigit() else 0


def ephemeral_port_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on or lingers at host:port.

    No SO_REUSEADDR here on purpose: a port with TIME_WAIT leftovers is
    skipped, so servers that (wrongly) lack SO_REUSEADDR still start.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class PortAllocator:
    """Hands out free ports from this worker's slice, in random order.

    Random, not round robin from a pid-based offset: runs started together have
    neighbouring pids, and in step they kept drawing the port the other had
    just probed free and was about to bind (see servers.start_server's retry).
    """

    worker: int = field(default_factory=worker_index)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        ceiling = ephemeral_port_floor()
        slice_size = max(16, (ceiling - PORT_FLOOR) // MAX_WORKERS)
        self._low = PORT_FLOOR + self.worker * slice_size
        self._size = slice_size

    def allocate(self, host: str = "127.0.0.1") -> int:
        for offset in self._random.sample(range(self._size), self._size):
            port = self._low + offset
            if port_is_free(host, port):
                return port
        raise SockspecError(
            f"no free port in {self._low}-{self._low + self._size - 1} for worker {self.worker}"
        )


def make_socket_dir() -> str:
    """A fresh private directory for one Unix socket; short enough for sun_path.

    Named /tmp/sockspec-<pid>-XXXXXXXX and registered for removal (sockspec.cleanup).
    """
    return str(make_workdir())


def remove_socket_dir(path: str) -> None:
    remove_workdir(path)
