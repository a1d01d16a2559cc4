"""Concurrent connections: N verified connections held at once, over as many processes as needed.

Large N is spread over several generator processes and source addresses by
sockspec.measure.plan (fd limit 20000 per process here, ~14k connections per
(source, destination) pair), run through sockspec.measure.coordinator (execnet)
and merged; one generator's loop is sockspec.measure.holder. ``hold_concurrent``
does the whole thing and samples the server's RSS while everything is held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from sockspec.measure.holder import (
    ConnectionHolder,
    HoldRequest,
    HoldResult,
    merge_results,
    token_for,
)
from sockspec.measure.plan import (
    ConnectionPlan,
    ImpossibleLoad,
    loopback_sources,
    plan_connections,
    read_host_limits,
)
from sockspec.measure.sockets import resolve_destination
from sockspec.transport import Address

__all__ = ["ConcurrentResult", "ConnectionHolder", "HoldRequest", "HoldResult",
           "hold_concurrent", "merge_results", "plan_for", "token_for"]


@dataclass
class ConcurrentResult:
    requested: int
    hold: HoldResult                      # merged over generators
    plan: ConnectionPlan
    wall_s: float                         # coordinator: go -> last generator done
    server_rss_before: int | None = None
    server_rss_held: int | None = None

    @property
    def server_bytes_per_conn(self) -> float | None:
        if self.server_rss_before is None or self.server_rss_held is None or not self.hold.verified:
            return None
        return (self.server_rss_held - self.server_rss_before) / self.hold.verified

    @property
    def ok(self) -> bool:
        return self.hold.verified == self.requested and not self.hold.failures

    def describe(self) -> str:
        text = (f"{self.hold.verified} of {self.requested} connections verified "
                f"({self.hold.established} established) over {self.plan.generators} "
                f"generator(s) and {max(1, len(self.plan.sources))} source address(es); "
                f"setup {self.hold.setup_s:.2f} s")
        if self.hold.failures:
            text += f"; failures {self.hold.failures}; first: {self.hold.first_failure}"
        return text


def plan_for(destinations: Sequence[Address], n: int, generators: int | None = None
             ) -> ConnectionPlan:
    transport = destinations[0].transport
    sources = loopback_sources(transport) if all(d.is_loopback() for d in destinations) else ()
    return plan_connections(n, destinations=len(destinations), transport=transport,
                            limits=read_host_limits(), source_pool=sources,
                            generators=generators)


def hold_concurrent(
    destinations: Sequence[str | Address],
    n: int,
    *,
    inflight: int = 1000,
    timeout_s: float = 30.0,
    generators: int | None = None,
    in_process: bool | None = None,
    rss_sampler: Callable[[], int] | None = None,
    while_held: Callable[[HoldResult], None] | None = None,
    gateway_specs: Sequence[str] | None = None,
    message: bytes = b"",
    reply: bytes = b"",
) -> ConcurrentResult:
    """Hold ``n`` verified connections at once; sample the server's RSS while held.

    The plan (generators, sources) is refused up front if impossible. With one
    generator and ``in_process`` not False the connections live in this process;
    otherwise execnet generator processes are started (``gateway_specs``, default
    local ``popen``), started together, and their results merged.
    ``message``/``reply``: what every connection sends and must get back (a declared
    protocol's exchange); by default each sends its own echo token.
    """
    targets = [resolve_destination(d) for d in destinations]
    if not targets:
        raise ImpossibleLoad("at least one destination is needed")
    plan = plan_for(targets, n, generators)
    requests = [HoldRequest(tuple(str(t) for t in targets), share.count, share.first_index,
                            share.sources, inflight, timeout_s, message=message, reply=reply)
                for share in plan.shares]
    for request in requests:
        request.validate()
    before = rss_sampler() if rss_sampler else None
    local = in_process if in_process is not None else plan.generators == 1
    if local and plan.generators == 1 and not gateway_specs:
        holder = ConnectionHolder(requests[0])
        started = time.perf_counter()
        try:
            hold = holder.open_all()
            wall = time.perf_counter() - started
            held_rss = rss_sampler() if rss_sampler else None
            if while_held:
                while_held(hold)
        finally:
            holder.release()
        return ConcurrentResult(n, hold, plan, wall, before, held_rss)
    from sockspec.measure.coordinator import Coordinator

    specs = list(gateway_specs or ["popen"] * plan.generators)
    if len(specs) != plan.generators:
        raise ImpossibleLoad(f"the plan needs {plan.generators} generators; "
                             f"{len(specs)} gateway specs were given")
    with Coordinator(specs) as coordinator:
        outcome = coordinator.hold([asdict(r) for r in requests],
                                   timeout_s=timeout_s + 30)
        try:
            hold = merge_results([HoldResult.from_wire(r) for r in outcome.results])
            held_rss = rss_sampler() if rss_sampler else None
            if while_held:
                while_held(hold)
        finally:
            coordinator.release_all()
    return ConcurrentResult(n, hold, plan, outcome.wall_s, before, held_rss)
