"""The scenario model: families, the @scenario decorators, and the catalogue.

A scenario is a pytest test function in ``scenarios/`` that takes the
``server`` fixture and drives it with harness primitives (``@scenario``), or a
client scenario (``@client_scenario``, in ``scenarios/client_*.py``) that takes
the ``client`` fixture, plays the server itself and judges the client. The
decorator attaches a ScenarioSpec; the pytest plugin turns each spec into one
item per (target x transport) it applies to: servers for server scenarios,
clients for client scenarios.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.targets import PROFILES, TRANSPORTS
from harness.thresholds import Measure
from harness.verdict import LEVELS, MUST, SHOULD

CATALOGUE_PACKAGE = "scenarios"
# A safety net (pytest-timeout) over a scenario's own bounded waits: a scenario
# that still runs after this long is stopped and reported as failed.
DEFAULT_TIME_LIMIT = 120.0


@dataclass(frozen=True)
class Family:
    """A behaviour family: one pytest marker and one row of the report.

    ``hint`` names the system call and the pattern that fixes the usual cause;
    a family cannot be declared without one. ``measures``: the figures of a
    measurement family that thresholds may judge (harness.thresholds); a
    family with measures is a measurement family, its figures level INFO
    unless the user gives a threshold.
    """

    name: str
    behaviour: str
    hint: str
    measures: tuple[Measure, ...] = ()

    def __post_init__(self) -> None:
        if not self.behaviour.strip() or not self.hint.strip():
            raise ValueError(f"family {self.name!r} needs a behaviour and a fix hint")

    def measure(self, name: str) -> Measure:
        found = next((m for m in self.measures if m.name == name), None)
        if found is None:
            raise KeyError(f"family {self.name!r} declares no measure {name!r}")
        return found


@dataclass(frozen=True)
class ScenarioSpec:
    id: str
    family: Family
    profiles: tuple[str, ...]
    transports: tuple[str, ...]
    description: str
    fresh_server: bool = False
    not_on: dict[str, str] = field(default_factory=dict)
    module: str = ""
    needs_process_control: bool = False
    kind: str = "server"            # "server": judges servers; "client": judges clients
    time_limit: float = DEFAULT_TIME_LIMIT
    # The level of the scenario's checks that name none (MUST or SHOULD), and why.
    level: str = MUST
    reason: str = ""

    def applies_to(self, profile: str) -> bool:
        return profile in self.profiles


def scenario(
    family: Family,
    *,
    profiles: tuple[str, ...] = PROFILES,
    transports: tuple[str, ...] = TRANSPORTS,
    fresh_server: bool = False,
    not_on: dict[str, str] | None = None,
    needs_process_control: bool | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    level: str = MUST,
    reason: str = "",
) -> Callable[[Callable], Callable]:
    """Declare a scenario.

    ``fresh_server``: the scenario may damage the server, so it gets its own.
    ``not_on``: transports where the behaviour means nothing, with the reason
    shown when the item is skipped there.
    ``needs_process_control``: the scenario starts, stops, signals or inspects
    the server's process (default: same as ``fresh_server``); it is skipped for
    a server that is already running (``--connect``).
    ``time_limit``: seconds after which the whole scenario is stopped.
    ``level``: MUST or SHOULD, the level of every check that names none
    (``expect(..., level=SHOULD)`` names its own); ``reason``: one line saying why,
    against the RFCs or common practice.
    """
    if level not in LEVELS[:2]:
        raise ValueError(f"scenario level must be {MUST} or {SHOULD}, got {level!r}")

    def declare(func: Callable) -> Callable:
        name = func.__name__
        if not name.startswith("test_"):
            raise ValueError(f"scenario function {name} must be named test_<id>")
        doc = (func.__doc__ or "").strip()
        if not doc:
            raise ValueError(f"scenario {name} needs a docstring stating the behaviour")
        unknown = set(profiles) - set(PROFILES) | set(transports) - set(TRANSPORTS)
        if unknown:
            raise ValueError(f"scenario {name}: unknown profile or transport {sorted(unknown)}")
        func.__sockspec__ = ScenarioSpec(
            id=name.removeprefix("test_"),
            family=family,
            profiles=tuple(profiles),
            transports=tuple(transports),
            description=doc.splitlines()[0],
            fresh_server=fresh_server,
            not_on=dict(not_on or {}),
            module=func.__module__,
            needs_process_control=fresh_server if needs_process_control is None
            else needs_process_control,
            time_limit=time_limit,
            level=level,
            reason=reason,
        )
        return func

    return declare


CLIENT_FAMILY_PREFIX = "client-"


def client_scenario(
    family: Family,
    *,
    profiles: tuple[str, ...] = PROFILES,
    transports: tuple[str, ...] = TRANSPORTS,
    not_on: dict[str, str] | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
    level: str = MUST,
    reason: str = "",
) -> Callable[[Callable], Callable]:
    """Declare a client scenario: it takes the ``client`` fixture and plays the server.

    Same rules as ``scenario``; its family name starts with "client-", so client
    and server families never mix in a report column or a ``-m`` selection.
    """
    if not family.name.startswith(CLIENT_FAMILY_PREFIX):
        raise ValueError(f"client family {family.name!r} must start with {CLIENT_FAMILY_PREFIX!r}")

    def declare(func: Callable) -> Callable:
        scenario(family, profiles=profiles, transports=transports, not_on=not_on,
                 time_limit=time_limit, level=level, reason=reason)(func)
        func.__sockspec__ = dataclasses.replace(func.__sockspec__, kind="client")
        return func

    return declare


def spec_of(func: object) -> ScenarioSpec | None:
    return getattr(func, "__sockspec__", None)


def load_catalogue() -> list[ScenarioSpec]:
    """Import every module of the scenarios package and return its specs, sorted."""
    package = importlib.import_module(CATALOGUE_PACKAGE)
    specs: list[ScenarioSpec] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{CATALOGUE_PACKAGE}.{info.name}")
        specs += [s for obj in vars(module).values() if (s := spec_of(obj)) is not None]
    ids = [s.id for s in specs]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"scenario ids used twice: {sorted(duplicates)}")
    return sorted(specs, key=lambda s: (s.family.name, s.id))


def families(specs: list[ScenarioSpec]) -> dict[str, Family]:
    return {s.family.name: s.family for s in specs}


def catalogue_measures(specs: list[ScenarioSpec]) -> dict[str, Measure]:
    """Every figure a threshold may judge, by its name ``<family>.<figure>``."""
    return {f"{family.name}.{measure.name}": measure
            for family in families(specs).values() for measure in family.measures}
