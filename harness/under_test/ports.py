"""Ports and Unix socket paths that parallel workers never share.

Ports come from below the kernel's ephemeral range (ip_local_port_range), so a
client's automatically chosen source port can never take a server's port, and
each process that starts servers draws from a slice of that range no other
sockspec process on the machine holds (claimed_slot()).
"""

from __future__ import annotations

import os
import random
import socket
import threading
from dataclasses import dataclass, field

from sockspec.cleanup import make_workdir, remove_workdir
from sockspec.errors import SockspecError

PORT_FLOOR = 20000
MAX_WORKERS = 64
# The abstract Unix socket name (Linux, no file) whose binding holds slot N.
SLOT_NAME = "\0sockspec-port-slot-{}"

_claim: tuple[int, socket.socket | None] | None = None
_claim_lock = threading.Lock()


def worker_index() -> int:
    """0 for a plain run, N for pytest-xdist worker gwN."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = name.removeprefix("gw")
    return int(digits) % MAX_WORKERS if digits.isdigit() else 0


def claimed_slot() -> int:
    """This process's slice of the port range, held until it exits.

    The slot is claimed by binding the abstract Unix socket SLOT_NAME: the kernel
    refuses a second binding of a name, in any process, and frees it when the
    holder exits however it ends (no file to leave behind). The xdist worker
    name alone was not enough: a `sockspec run -n 2` started by a test in worker
    gw1 has workers gw0 and gw1 too, and they drew from the slices of the outer
    gw0 and gw1 (a fresh CI run had a server fail with EADDRINUSE that way).
    The search starts at the worker's own index; with every slot held, the
    worker's index is shared (the start's retry covers a listener found there).
    Claimed from the first caller's network namespace: the one sockspec runs in.
    """
    global _claim
    with _claim_lock:
        if _claim is None:
            _claim = _claim_free_slot(worker_index())
        return _claim[0]


def _forget_claim() -> None:
    """In a forked child: the slot is the parent's; the child claims its own if it needs one."""
    global _claim, _claim_lock
    _claim_lock = threading.Lock()  # another thread may have held it at the fork
    if _claim is not None and _claim[1] is not None:
        _claim[1].close()  # the parent's copy keeps the name bound
    _claim = None


os.register_at_fork(after_in_child=_forget_claim)


def _claim_free_slot(first: int) -> tuple[int, socket.socket | None]:
    for step in range(MAX_WORKERS):
        slot = (first + step) % MAX_WORKERS
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            holder.bind(SLOT_NAME.format(slot))
        except OSError:
            holder.close()
            continue
        return slot, holder
    return first, None


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
    """Hands out free ports from one slice, in random order: this process's own
    (claimed_slot()) unless ``worker`` names one.

    Random, not round robin from a pid-based offset: runs started together have
    neighbouring pids, and in step they kept drawing the port the other had
    just probed free and was about to bind (see servers.start_server's retry).
    """

    worker: int = field(default_factory=claimed_slot)
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
