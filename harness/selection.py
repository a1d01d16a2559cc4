"""What a run covers: which targets, transports and scenarios.

Shared by the pytest plugin and the ``sockspec`` command, so both accept and
refuse the same options with the same one-line messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.errors import UsageError
from harness.scenario import ScenarioSpec
from harness.targets import (
    TRANSPORTS,
    Target,
    adhoc_target,
    builtin_targets,
    connect_target,
    load_targets,
)


@dataclass(frozen=True)
class Selection:
    targets: list[Target]
    transports: tuple[str, ...]
    scenarios: frozenset[str]


def build_selection(
    *,
    targets_file: str | None,
    target_names: list[str],
    transports: list[str],
    server_cmd: str | None,
    profile: str | None,
    scenarios: list[str],
    catalogue: list[ScenarioSpec],
    cwd: str,
    connect: str | None = None,
    root: str | None = None,
    allow_remote: bool = False,
) -> Selection:
    """Resolve options to targets; the reference servers when nothing is named."""
    if server_cmd and connect:
        raise UsageError("use either --server-cmd or --connect, not both")
    if profile and not (server_cmd or connect):
        raise UsageError("--profile only applies to --server-cmd or --connect")
    if root and not connect:
        raise UsageError("--root only applies to --connect")
    from_file = load_targets(targets_file, allow_remote=allow_remote) if targets_file else []
    adhoc = [adhoc_target(server_cmd, profile, cwd)] if server_cmd else []
    if connect:
        root = os.path.abspath(os.path.join(cwd, root)) if root else None
        adhoc.append(connect_target(connect, profile, root, allow_remote=allow_remote))
    known = {t.name: t for t in [*builtin_targets().values(), *from_file, *adhoc]}
    if target_names:
        unknown = [n for n in target_names if n not in known]
        if unknown:
            raise UsageError(
                f"unknown target {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        chosen = [known[n] for n in dict.fromkeys(target_names)]
    else:
        chosen = [*from_file, *adhoc] or list(builtin_targets().values())
    bad = [t for t in transports if t not in TRANSPORTS]
    if bad:
        raise UsageError(f"unknown transport {bad[0]!r}; use tcp, tcp6 or unix")
    names = {s.id for s in catalogue} | {s.family.name for s in catalogue}
    unknown_scenarios = [s for s in scenarios if s not in names]
    if unknown_scenarios:
        raise UsageError(
            f"no scenario or family named {unknown_scenarios[0]!r} (see `sockspec list`)"
        )
    return Selection(
        targets=chosen,
        transports=tuple(t for t in TRANSPORTS if not transports or t in transports),
        scenarios=frozenset(scenarios),
    )
