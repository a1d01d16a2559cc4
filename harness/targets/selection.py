"""What a run covers: which targets, transports and scenarios.

Shared by the pytest plugin and the ``sockspec`` command, so both accept and
refuse the same options with the same one-line messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sockspec.catalogue import ScenarioSpec
from sockspec.errors import UsageError
from sockspec.targets.clients import (
    ClientTarget,
    adhoc_client_target,
    builtin_client_targets,
    load_target_file,
)
from sockspec.targets.servers import (
    TRANSPORTS,
    Target,
    adhoc_target,
    builtin_targets,
    connect_target,
)


@dataclass(frozen=True)
class Selection:
    targets: list[Target]                # servers under test
    transports: tuple[str, ...]
    scenarios: frozenset[str]
    clients: list[ClientTarget] = field(default_factory=list)  # clients under test


def build_selection(
    *,
    targets_file: str | None,
    target_names: list[str],
    transports: list[str],
    server_cmd: str | None,
    profile: str | None,
    scenarios: list[str],
    cwd: str,
    connect: str | None = None,
    root: str | None = None,
    allow_remote: bool = False,
    client_cmd: str | None = None,
) -> Selection:
    """Resolve options to servers and clients; the references when nothing is named.

    No names: every target in --targets (servers and clients) plus --server-cmd /
    --connect / --client-cmd; with none of those, the reference servers and
    reference clients. One --profile serves every ad-hoc target.
    """
    if server_cmd and connect:
        raise UsageError("use either --server-cmd or --connect, not both")
    if profile and not (server_cmd or connect or client_cmd):
        raise UsageError("--profile only applies to --server-cmd, --client-cmd or --connect")
    if root and not connect:
        raise UsageError("--root only applies to --connect")
    from_file = load_target_file(targets_file, allow_remote=allow_remote) if targets_file \
        else None
    file_servers = from_file.servers if from_file else []
    file_clients = from_file.clients if from_file else []
    adhoc = [adhoc_target(server_cmd, profile, cwd)] if server_cmd else []
    if connect:
        root = os.path.abspath(os.path.join(cwd, root)) if root else None
        adhoc.append(connect_target(connect, profile, root, allow_remote=allow_remote))
    known_servers = {t.name: t for t in [*builtin_targets().values(), *file_servers, *adhoc]}
    adhoc_clients = [adhoc_client_target(client_cmd, profile, cwd)] if client_cmd else []
    known_clients = {c.name: c for c in [*builtin_client_targets().values(), *file_clients,
                                         *adhoc_clients]}
    both = sorted(known_servers.keys() & known_clients.keys())
    if both:
        raise UsageError(f"target name {both[0]!r} names both a server and a client")
    if target_names:
        known = known_servers.keys() | known_clients.keys()
        unknown = [n for n in target_names if n not in known]
        if unknown:
            raise UsageError(
                f"unknown target {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        wanted = list(dict.fromkeys(target_names))
        chosen = [known_servers[n] for n in wanted if n in known_servers]
        clients = [known_clients[n] for n in wanted if n in known_clients]
    elif from_file or adhoc or adhoc_clients:
        chosen, clients = [*file_servers, *adhoc], [*file_clients, *adhoc_clients]
    else:
        chosen = list(builtin_targets().values())
        clients = list(builtin_client_targets().values())
    bad = [t for t in transports if t not in TRANSPORTS]
    if bad:
        raise UsageError(f"unknown transport {bad[0]!r}; use tcp, tcp6 or unix")
    return Selection(
        targets=chosen,
        transports=tuple(t for t in TRANSPORTS if not transports or t in transports),
        scenarios=frozenset(scenarios),
        clients=clients,
    )


def check_scenario_names(names: list[str], catalogue: list[ScenarioSpec]) -> None:
    """Every --scenario name (or ``sockspec run`` selector) names a scenario or a family."""
    known = {s.id for s in catalogue} | {s.family.name for s in catalogue}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"no scenario or family named {unknown[0]!r} (see `sockspec list`)")
