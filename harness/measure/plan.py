"""Limit planning: can this load be generated here, and by how many processes?

Pure functions over numbers; the only I/O is ``read_host_limits``. Impossible
requests are refused up front with the limit named (ImpossibleLoad, exit 2 at
the CLI), never discovered later as a storm of EMFILE or EADDRNOTAVAIL.

Kernel facts measured on this machine (shared/bench/RESULTS.md §5):
* RLIMIT_NOFILE is 20000 soft = hard, and root lacks CAP_SYS_RESOURCE, so one
  process holds at most ~19990 sockets (a few fds are stdio, epoll, pipes).
* One (source IP, destination IP:port) pair can use ip_local_port_range ports
  (32768-60999 = 28232); past ~14.1k connections on one pair, connect() scans
  the used even ports first and setup becomes ~7x slower. So we keep every pair
  below PAIR_SOFT_LIMIT by adding source addresses 127.0.0.x, bound with
  IP_BIND_ADDRESS_NO_PORT so the port is still chosen per 4-tuple at connect().
* Each loopback connection costs ~7 KiB of kernel memory for both ends.
"""

from __future__ import annotations

import ipaddress
import math
import os
import resource
from dataclasses import dataclass

from sockspec.errors import UsageError

PAIR_SOFT_LIMIT = 14_000          # connections per (source, destination) pair
FD_RESERVE = 10                   # stdio, epoll, execnet pipes, the odd log file
MAX_GENERATORS = 32               # load-generator processes one coordinator drives
KERNEL_BYTES_PER_CONNECTION = 16 * 1024  # ~7 KiB measured; doubled for safety
LOOPBACK_V4_SOURCES = tuple(f"127.0.0.{i}" for i in range(1, 255))
MAX_MESSAGE_BYTES = 64 * 1024     # ping-pong: larger messages can deadlock a blocking echo
MAX_SAMPLES = 10_000_000          # raw samples are kept in memory, 8 bytes each


class ImpossibleLoad(UsageError):
    """A load that cannot be generated here; the message names the limit."""


@dataclass(frozen=True)
class HostLimits:
    fd_limit: int                  # RLIMIT_NOFILE hard limit of one process
    port_range: int                # size of net.ipv4.ip_local_port_range
    mem_available: int | None = None   # bytes, from /proc/meminfo MemAvailable
    pair_soft_limit: int = PAIR_SOFT_LIMIT
    max_generators: int = MAX_GENERATORS

    @property
    def sockets_per_process(self) -> int:
        return self.fd_limit - FD_RESERVE


@dataclass(frozen=True)
class GeneratorShare:
    """One load generator's part: connections [first_index, first_index + count)."""

    first_index: int
    count: int
    sources: tuple[str, ...]       # source addresses to bind (empty: let the kernel choose)


@dataclass(frozen=True)
class ConnectionPlan:
    total: int
    destinations: int
    sources: tuple[str, ...]
    shares: tuple[GeneratorShare, ...]

    @property
    def generators(self) -> int:
        return len(self.shares)

    @property
    def max_per_pair(self) -> int:
        pairs = max(1, len(self.sources)) * self.destinations
        return math.ceil(self.total / pairs)


def source_for(index: int, destinations: int, sources: tuple[str, ...]) -> str | None:
    """The source address of connection ``index``: destinations vary fastest, then sources."""
    if not sources:
        return None
    return sources[(index // destinations) % len(sources)]


def plan_connections(
    total: int,
    *,
    destinations: int,
    transport: str,
    limits: HostLimits,
    source_pool: tuple[str, ...] = LOOPBACK_V4_SOURCES,
    generators: int | None = None,
) -> ConnectionPlan:
    """How many generator processes and source addresses ``total`` connections need.

    ``transport`` is tcp, tcp6 or unix; ``source_pool`` the addresses this host
    may bind (127.0.0.1-254 for IPv4 loopback; ::1 alone for tcp6; none in a
    namespace lab, where each generator has its own address). ``generators``
    forces a process count (it must still fit the fd limit).
    """
    if total < 1:
        raise ImpossibleLoad(f"the number of connections must be at least 1, not {total}")
    if destinations < 1:
        raise ImpossibleLoad("at least one destination address is needed")
    per_process = limits.sockets_per_process
    needed = math.ceil(total / per_process)
    if generators is not None:
        if generators < 1:
            raise ImpossibleLoad(f"the number of generators must be at least 1, not {generators}")
        if generators < needed:
            raise ImpossibleLoad(
                f"{total} connections over {generators} generator process(es) is "
                f"{math.ceil(total / generators)} sockets per process; the fd limit "
                f"(RLIMIT_NOFILE {limits.fd_limit}, hard) allows {per_process}")
        needed = generators
    if needed > limits.max_generators:
        raise ImpossibleLoad(
            f"{total} connections need {needed} generator processes at {per_process} sockets "
            f"each (RLIMIT_NOFILE {limits.fd_limit}); at most {limits.max_generators} are allowed")
    if limits.mem_available is not None:
        need_bytes = total * KERNEL_BYTES_PER_CONNECTION
        if need_bytes > limits.mem_available // 2:
            raise ImpossibleLoad(
                f"{total} connections need about {need_bytes / 2**30:.1f} GiB of kernel memory "
                f"(~{KERNEL_BYTES_PER_CONNECTION // 1024} KiB each, both ends); half of "
                f"MemAvailable is {limits.mem_available / 2**31:.1f} GiB")
    sources = _plan_sources(total, destinations, transport, limits, source_pool)
    return ConnectionPlan(total, destinations, sources, _split(total, needed, sources))


def _plan_sources(total: int, destinations: int, transport: str, limits: HostLimits,
                  source_pool: tuple[str, ...]) -> tuple[str, ...]:
    """Source addresses to bind, () when the kernel's own choice keeps pairs small enough."""
    if transport == "unix":
        return ()  # no ports: only the fd limit applies
    per_destination = math.ceil(total / destinations)
    usable = max(1, len(source_pool))
    if per_destination > limits.port_range * usable:
        where = (f"{len(source_pool)} source address(es) ({source_pool[0]}-{source_pool[-1]})"
                 if source_pool else "one source address")
        raise ImpossibleLoad(
            f"{total} connections to {destinations} destination(s) is {per_destination} per "
            f"destination; {where} give(s) at most {limits.port_range * usable} "
            f"(ip_local_port_range has {limits.port_range} ports per (source, destination) pair)")
    if per_destination <= limits.pair_soft_limit or len(source_pool) <= 1:
        return ()  # one source suffices (or is all there is): no bind, the kernel picks it
    needed = math.ceil(per_destination / limits.pair_soft_limit)
    return tuple(source_pool[:min(needed, len(source_pool))])


def _split(total: int, generators: int, sources: tuple[str, ...]) -> tuple[GeneratorShare, ...]:
    base, extra = divmod(total, generators)
    shares, first = [], 0
    for g in range(generators):
        count = base + (1 if g < extra else 0)
        shares.append(GeneratorShare(first, count, sources))
        first += count
    return tuple(shares)


def loopback_sources(transport: str) -> tuple[str, ...]:
    """Addresses a loopback generator may bind: 127.0.0.1-254, or ::1 alone for tcp6."""
    return LOOPBACK_V4_SOURCES if transport == "tcp" else ("::1",) if transport == "tcp6" else ()


def read_host_limits() -> HostLimits:
    """RLIMIT_NOFILE (hard), the ephemeral port range and MemAvailable of this host."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port_range = 28232
    try:
        low, high = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        port_range = int(high) - int(low) + 1
    except (OSError, ValueError):
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                mem = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    fd_limit = hard if hard != resource.RLIM_INFINITY else os.sysconf("SC_OPEN_MAX")
    return HostLimits(fd_limit=int(fd_limit), port_range=port_range, mem_available=mem)


# ----------------------------------------------------------- request checks


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ImpossibleLoad(f"{name} must be positive, not {value:g}")


def check_ping_pong(size: int, count: int, warmup: int, rate_per_s: float | None) -> None:
    """Refuse a ping-pong request that cannot run: names the limit it breaks."""
    if size < 1:
        raise ImpossibleLoad(f"message size must be at least 1 byte, not {size}")
    if size > MAX_MESSAGE_BYTES:
        raise ImpossibleLoad(
            f"message size {size} is above {MAX_MESSAGE_BYTES} bytes: a blocking ping-pong "
            "larger than the socket buffers can deadlock against an echo server")
    if count < 1:
        raise ImpossibleLoad(f"round-trip count must be at least 1, not {count}")
    if count > MAX_SAMPLES:
        raise ImpossibleLoad(f"round-trip count {count} is above {MAX_SAMPLES} per generator "
                             "(samples are kept in memory); use several generators")
    if warmup < 0:
        raise ImpossibleLoad(f"warm-up count must not be negative, not {warmup}")
    if rate_per_s is not None:
        check_positive("request rate (per second)", rate_per_s)


def check_cpus(cpus: tuple[int, ...] | None, available: set[int]) -> None:
    if cpus is None:
        return
    missing = sorted(set(cpus) - available)
    if not cpus or missing:
        raise ImpossibleLoad(f"cannot pin to CPU(s) {missing or '(none)'}: this process may "
                             f"run on {sorted(available)}")


def is_loopback_host(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback
