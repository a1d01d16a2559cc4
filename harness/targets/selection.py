"""What a run covers: which targets, transports and scenarios.

Shared by the pytest plugin and the ``sockspec`` command, so both accept and
refuse the same options with the same one-line messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field

from sockspec.catalogue import (
    DEFAULT_TIME_LIMIT,
    ScenarioSpec,
    catalogue_measures,
    load_catalogue,
)
from sockspec.errors import TargetConfigError, UsageError
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
    load_protocol_files,
)
from sockspec.thresholds import Threshold, parse_cli_thresholds, resolve_names
from sockspec.toxics.spec import ToxicProfile, default_seed, profiles_of_options

# A server not accepting after this long could not finish a scenario anyway (the
# default time limit of a whole scenario).
MAX_READY_TIMEOUT_S = DEFAULT_TIME_LIMIT
# -n beyond this many workers per CPU only adds contention: every worker is a whole
# Python process starting its own servers and clients, and scenarios with timing
# (readiness, connection rate, clients' stated limits) would fail for the harness's
# load, not the program's. xdist also takes seconds per worker to start.
WORKERS_PER_CPU = 4


def parse_ready_timeout(text: str) -> float:
    """``--ready-timeout S`` (the argparse type of both ``sockspec run`` and the plugin):
    a finite number of seconds in (0, MAX_READY_TIMEOUT_S]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_READY_TIMEOUT_S):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_READY_TIMEOUT_S:g}, "
            f"got {text!r}")
    return value


def max_workers() -> int:
    """The most ``-n`` workers ``sockspec run`` accepts: WORKERS_PER_CPU per usable CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return WORKERS_PER_CPU * max(cpus, 1)


def check_workers(text: str | None) -> None:
    """``-n N|auto``: UsageError for anything but 'auto' or 0..max_workers()."""
    if text is None or text == "auto":
        return
    if not text.isdigit():
        raise UsageError(f"-n wants a number or 'auto', got {text!r}")
    limit = max_workers()
    if int(text) > limit:
        raise UsageError(f"-n {text}: at most {limit} workers here ({WORKERS_PER_CPU} per "
                         f"usable CPU); 'auto' gives one per CPU")


@dataclass(frozen=True)
class Selection:
    targets: list[Target]                # servers under test
    transports: tuple[str, ...]
    scenarios: frozenset[str]
    clients: list[ClientTarget] = field(default_factory=list)  # clients under test
    # Warnings about the targets file (unknown keys): the caller prints them once.
    warnings: tuple[str, ...] = ()
    # --threshold: the user's thresholds for every server of the run (they replace a
    # target's own for the same metric, which replace the defaults).
    thresholds: tuple[Threshold, ...] = ()
    # --toxic / [[toxic]]: the toxic profiles, a dimension of the matrix (None: no
    # toxics), and the seed of their random draws (sockspec.toxics).
    toxics: tuple[ToxicProfile | None, ...] = (None,)
    toxic_seed: int = 0


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
    thresholds: list[str] | tuple[str, ...] = (),
    catalogue: list[ScenarioSpec] | None = None,
    protocol_files: list[str] | tuple[str, ...] = (),
    toxic_specs: list[str] | tuple[str, ...] = (),
    toxic_seed: int | None = None,
) -> Selection:
    """Resolve options to servers and clients; the references when nothing is named.

    No names: every target in --targets (servers and clients) plus --server-cmd /
    --connect / --client-cmd; with none of those, the reference servers and
    reference clients. One --profile serves every ad-hoc target.
    """
    for option, value in (("--server-cmd", server_cmd), ("--client-cmd", client_cmd),
                          ("--connect", connect)):
        if value is not None and not value.strip():
            raise UsageError(f"{option} is empty")
    if server_cmd is not None and connect is not None:
        raise UsageError("use either --server-cmd or --connect, not both")
    if protocol_files and not (server_cmd or connect or client_cmd):
        raise UsageError("--protocols only applies to --server-cmd, --client-cmd or --connect "
                         "(a targets file names its own protocol files)")
    if profile and not (server_cmd or connect or client_cmd):
        raise UsageError("--profile only applies to --server-cmd, --client-cmd or --connect")
    if root and not connect:
        raise UsageError("--root only applies to --connect")
    from_file = load_target_file(targets_file, allow_remote=allow_remote) if targets_file \
        else None
    # Threshold names are checked against the measures the run's families declare (the
    # built-in catalogue unless the caller knows the run's scenarios).
    measures = {}
    if thresholds or any(t.thresholds for t in (from_file.servers if from_file else [])):
        measures = catalogue_measures(load_catalogue() if catalogue is None else catalogue)
    cli_thresholds = resolve_names(parse_cli_thresholds(thresholds), measures, UsageError)
    file_servers = [dataclasses.replace(t, thresholds=resolve_names(
        t.thresholds, measures, TargetConfigError)) for t in (from_file.servers if from_file
                                                              else [])]
    file_clients = from_file.clients if from_file else []
    protocols = load_protocol_files(protocol_files, cwd)
    adhoc = [adhoc_target(server_cmd, profile, cwd, protocols)] if server_cmd else []
    if connect:
        root = os.path.abspath(os.path.join(cwd, root)) if root else None
        adhoc.append(connect_target(connect, profile, root, allow_remote=allow_remote,
                                    protocols=protocols))
    known_servers = {t.name: t for t in [*builtin_targets().values(), *file_servers, *adhoc]}
    adhoc_clients = [adhoc_client_target(client_cmd, profile, cwd, protocols)] if client_cmd \
        else []
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
    toxics = profiles_of_options(toxic_specs, from_file.toxics if from_file else [])
    return Selection(
        targets=chosen,
        transports=tuple(t for t in TRANSPORTS if not transports or t in transports),
        scenarios=frozenset(scenarios),
        clients=clients,
        warnings=from_file.warnings if from_file else (),
        thresholds=cli_thresholds,
        toxics=toxics,
        toxic_seed=default_seed(toxics) if toxic_seed is None else toxic_seed,
    )


def check_scenario_names(names: list[str], catalogue: list[ScenarioSpec]) -> None:
    """Every --scenario name (or ``sockspec run`` selector) names a scenario or a family."""
    known = {s.id for s in catalogue} | {s.family.name for s in catalogue}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"no scenario or family named {unknown[0]!r} (see `sockspec list`)")
