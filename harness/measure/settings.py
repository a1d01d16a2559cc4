"""Sizes of the measurement scenarios: modest by default, larger through the environment.

The default catalogue run must stay fast (a few seconds for all measurement
families per target and transport). A big run sets, for example::

    SOCKSPEC_LATENCY_ROUND_TRIPS=100000 SOCKSPEC_CONCURRENT_CONNECTIONS=50000 sockspec run ...

Values are parsed and checked here, once, and refused with the variable named.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, fields

from harness.errors import HarnessError
from harness.measure.plan import ImpossibleLoad

ENV_PREFIX = "SOCKSPEC_"
# Descriptors a server under test needs besides its connections: stdio, its
# listener, log files, an interpreter's own files.
SERVER_FD_RESERVE = 64
_inherited_soft_limit: int | None = None


@dataclass(frozen=True)
class MeasureSizes:
    latency_round_trips: int = 2000
    latency_warmup: int = 200
    latency_message_bytes: int = 64
    connection_rate_seconds: float = 1.0
    concurrent_connections: int = 500
    throughput_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> MeasureSizes:
        """Defaults overridden by SOCKSPEC_<FIELD NAME IN CAPITALS> variables."""
        env = os.environ if env is None else env
        values = {}
        for item in fields(cls):
            name = ENV_PREFIX + item.name.upper()
            if name not in env:
                continue
            text = env[name]
            try:
                value = float(text) if item.type == "float" else int(text)
            except ValueError:
                raise ImpossibleLoad(f"{name}={text!r} is not a number") from None
            minimum = 0 if item.name == "latency_warmup" else 1
            if item.type == "float":
                if not value > 0:
                    raise ImpossibleLoad(f"{name}={text} must be positive")
            elif value < minimum:
                raise ImpossibleLoad(f"{name}={text} must be at least {minimum}")
            values[item.name] = value
        return cls(**values)


def check_environment(env: Mapping[str, str] | None = None) -> MeasureSizes:
    """Parse the SOCKSPEC_* sizes and check them against this host's limits, so that a
    `sockspec run` with an impossible size stops before any scenario (ImpossibleLoad,
    exit 2) instead of failing the same way in every measurement scenario."""
    from harness.measure.plan import (
        LOOPBACK_V4_SOURCES,
        check_ping_pong,
        plan_connections,
        read_host_limits,
    )

    raise_fd_limit()
    sizes = MeasureSizes.from_environment(env)
    check_ping_pong(sizes.latency_message_bytes, sizes.latency_round_trips,
                    sizes.latency_warmup, None)
    plan_connections(sizes.concurrent_connections, destinations=1, transport="tcp",
                     limits=read_host_limits(), source_pool=LOOPBACK_V4_SOURCES)
    return sizes


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
