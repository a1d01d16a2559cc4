"""Sizes of the measurement scenarios: modest by default, larger through the environment.

Each family declares the sizes its scenarios read (``Family(sizes=(...), check_sizes=...)``,
with ``Size`` from here); this module parses and checks them. The default catalogue
run must stay fast (a few seconds for all measurement families per target and
transport). A big run sets, for example::

    SOCKSPEC_LATENCY_ROUND_TRIPS=100000 SOCKSPEC_CONCURRENT_CONNECTIONS=50000 sockspec run ...

Values are parsed and checked once, and refused with the variable named
(ImpossibleLoad: one line, exit 2, before any scenario runs).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sockspec.errors import HarnessError
from sockspec.measure.plan import ImpossibleLoad

ENV_PREFIX = "SOCKSPEC_"
# Descriptors a server under test needs besides its connections: stdio, its
# listener, log files, an interpreter's own files.
SERVER_FD_RESERVE = 64
_inherited_soft_limit: int | None = None


@dataclass(frozen=True)
class Size:
    """One size a family's scenarios read: ``SOCKSPEC_<NAME IN CAPITALS>``, else ``default``.

    An int size must be at least ``minimum``; a float size must be positive.
    """

    name: str
    default: int | float
    minimum: int = 1

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def value(self, env: Mapping[str, str] | None = None) -> int | float:
        env = os.environ if env is None else env
        text = env.get(self.variable)
        if text is None:
            return self.default
        kind = float if isinstance(self.default, float) else int
        try:
            value = kind(text)
        except ValueError:
            raise ImpossibleLoad(f"{self.variable}={text!r} is not a number") from None
        if kind is float and not value > 0:
            raise ImpossibleLoad(f"{self.variable}={text} must be positive")
        if kind is int and value < self.minimum:
            raise ImpossibleLoad(f"{self.variable}={text} must be at least {self.minimum}")
        return value


def family_sizes(family, env: Mapping[str, str] | None = None) -> dict[str, int | float]:
    """A family's sizes by name, parsed, then checked against this host by the family's
    ``check_sizes`` (if it declares one)."""
    values = {size.name: size.value(env) for size in family.sizes}
    if family.check_sizes is not None:
        family.check_sizes(values)
    return values


def check_environment(families: Iterable, env: Mapping[str, str] | None = None) -> None:
    """Parse and check the SOCKSPEC_* sizes of these families, so that a `sockspec run`
    with an impossible size stops before any scenario (ImpossibleLoad, exit 2) instead
    of failing the same way in every measurement scenario."""
    raise_fd_limit()
    for family in families:
        family_sizes(family, env)


def check_ping_pong_sizes(values: Mapping[str, int | float]) -> None:
    """For a family with latency_message_bytes, latency_round_trips, latency_warmup."""
    from sockspec.measure.plan import check_ping_pong

    check_ping_pong(values["latency_message_bytes"], values["latency_round_trips"],
                    values["latency_warmup"], None)


def check_connection_count(values: Mapping[str, int | float]) -> None:
    """For a family with concurrent_connections: one destination, loopback sources."""
    from sockspec.measure.plan import LOOPBACK_V4_SOURCES, plan_connections, read_host_limits

    plan_connections(values["concurrent_connections"], destinations=1, transport="tcp",
                     limits=read_host_limits(), source_pool=LOOPBACK_V4_SOURCES)


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the soft limit.

    Servers under test and load generators are children of the harness and
    inherit its limit: a shell's `ulimit -S -n 1024` (or 256) must not make a
    correct server refuse concurrent connections. Call it once at start-up,
    before any server is started (`sockspec run` does, through
    check_environment; the pytest plugin at configure).
    """
    global _inherited_soft_limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _inherited_soft_limit is None:
        _inherited_soft_limit = soft
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def check_server_fd_room(connections: int, server_soft_limit: int | None) -> None:
    """HarnessError when the server under test cannot hold ``connections`` because of
    the fd limit it inherited from the harness (not one it set itself)."""
    need = connections + SERVER_FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inherited = max(soft, _inherited_soft_limit or soft)
    if server_soft_limit is not None and server_soft_limit >= need:
        return
    if server_soft_limit is not None and server_soft_limit > inherited:
        return  # the server chose its own limit: its business, not the harness's
    limit = inherited if server_soft_limit is None else server_soft_limit
    if limit < need:
        raise HarnessError(
            f"the server under test inherits RLIMIT_NOFILE {limit} from the harness (hard "
            f"{hard}); {connections} concurrent connections need at least {need}: raise it "
            f"(ulimit -n {need}) or lower SOCKSPEC_CONCURRENT_CONNECTIONS")


def process_fd_soft_limit(pid: int) -> int | None:
    """The soft 'Max open files' of process ``pid`` (/proc/PID/limits), None if unknown."""
    try:
        with open(f"/proc/{pid}/limits") as limits:
            for line in limits:
                if line.startswith("Max open files"):
                    value = line.split()[3]
                    return None if value == "unlimited" else int(value)
    except (OSError, ValueError, IndexError):
        return None
    return None
