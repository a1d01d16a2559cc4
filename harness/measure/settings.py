"""Sizes of the measurement scenarios: modest by default, larger through the environment.

The default catalogue run must stay fast (a few seconds for all measurement
families per target and transport). A big run sets, for example::

    SOCKSPEC_LATENCY_ROUND_TRIPS=100000 SOCKSPEC_CONCURRENT_CONNECTIONS=50000 sockspec run ...

Values are parsed and checked here, once, and refused with the variable named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from sockspec.measure.plan import ImpossibleLoad

ENV_PREFIX = "SOCKSPEC_"


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
    from sockspec.measure.plan import (
        LOOPBACK_V4_SOURCES,
        check_ping_pong,
        plan_connections,
        read_host_limits,
    )

    sizes = MeasureSizes.from_environment(env)
    check_ping_pong(sizes.latency_message_bytes, sizes.latency_round_trips,
                    sizes.latency_warmup, None)
    plan_connections(sizes.concurrent_connections, destinations=1, transport="tcp",
                     limits=read_host_limits(), source_pool=LOOPBACK_V4_SOURCES)
    return sizes
