"""The scenario model: families, the @scenario decorators, and the catalogue.

Public through ``import sockspec`` (``Family``, ``scenario``, ``client_scenario``,
``Metrics``). A scenario is a pytest test function, in the built-in catalogue
(``sockspec.scenarios``) or in any test module of the user's, that takes the
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
import importlib.util
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sockspec.targets import PROFILES, TRANSPORTS
from sockspec.thresholds import Figures, Measure
from sockspec.verdict import LEVELS, MUST, SHOULD

# The profile of scenarios written for any declared protocol ([[protocol]]): they apply
# to every server or client whose profile is a declared protocol meeting their needs.
DECLARED = "declared"
# What a generic scenario may need of a declaration (sockspec.protocol.declared.NEEDS).
NEED_NAMES = ("exchange", "answers_after_fin", "keeps_connection", "concurrent", "binary",
              "large_reply")

CATALOGUE_PACKAGE = "sockspec.scenarios"
# A safety net (pytest-timeout) over a scenario's own bounded waits: a scenario
# that still runs after this long is stopped and reported as failed.
DEFAULT_TIME_LIMIT = 120.0


# A family's capture policy (README, "Packet captures"): "always" captures its TCP
# scenarios in the default mode; "on-request" only with --capture (bulk transfers and
# rates, which a capture beside them slows by 20-40 %).
CAPTURE_POLICIES = ("always", "on-request")
# The packet facts a failed verdict of the family cites (sockspec.packets.summary_text.cite):
# "ends" (who sent FIN or RST, when, after how many bytes), "replies" (where a reply waited).
CITED_FACTS = ("", "ends", "replies")


@dataclass(frozen=True)
class Chart:
    """A metric of the family's scenarios drawn as bars in the report, one bar per target
    and transport: ``Chart("conn_per_s", "connection rate", "conn/s")``."""

    metric: str
    what: str
    unit: str


@dataclass(frozen=True)
class Family:
    """A behaviour family: one pytest marker and one row of the report.

    ``hint`` names the system call and the pattern that fixes the usual cause;
    a family cannot be declared without one. What else the harness needs to know
    about the family is declared here too, so that adding a family touches only
    its scenario module (and the faulty program that proves it):

    ``capture``: "always" (default) or "on-request" (see CAPTURE_POLICIES);
    ``cites``: the packet facts its failed verdicts cite ("", "ends", "replies");
    ``charts``: metrics its scenarios record that the report draws as bars;
    ``sizes``: the measurement sizes (sockspec.measure.settings.Size) its scenarios read
    from SOCKSPEC_* variables, parsed before a ``sockspec run`` starts, and
    ``check_sizes``: a function of their values (by name) that refuses what this host
    cannot do (raises ImpossibleLoad);
    ``measures``: the figures of a measurement family that thresholds may judge
    (sockspec.thresholds); a family with measures is a measurement family, its figures
    level INFO unless the user gives a threshold.
    """

    name: str
    behaviour: str
    hint: str
    capture: str = "always"
    cites: str = ""
    charts: tuple[Chart, ...] = ()
    sizes: tuple = ()
    check_sizes: Callable[[dict], None] | None = None
    measures: tuple[Measure, ...] = ()

    def __post_init__(self) -> None:
        if not self.behaviour.strip() or not self.hint.strip():
            raise ValueError(f"family {self.name!r} needs a behaviour and a fix hint")
        if self.capture not in CAPTURE_POLICIES:
            raise ValueError(f"family {self.name!r}: capture must be one of {CAPTURE_POLICIES}")
        if self.cites not in CITED_FACTS:
            raise ValueError(f"family {self.name!r}: cites must be one of {CITED_FACTS}")

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
    path: str = ""                  # the file that defines it
    needs_process_control: bool = False
    kind: str = "server"            # "server": judges servers; "client": judges clients
    time_limit: float = DEFAULT_TIME_LIMIT
    # The level of the scenario's checks that name none (MUST or SHOULD), and why.
    level: str = MUST
    reason: str = ""
    # DECLARED scenarios: what the protocol's declaration must provide (NEED_NAMES).
    needs: tuple[str, ...] = ()

    def applies_to(self, profile: str) -> bool:
        """True for a built-in profile the scenario names, and for every declared
        protocol when it is a DECLARED scenario (its needs decide whether it runs).

        A DECLARED server scenario of the user's own runs on echo and http servers too,
        on their built-in declarations (sockspec.protocol.builtin); the catalogue's own
        generic scenarios do not, since echo and http have their own scenarios of
        those families."""
        if profile in PROFILES:
            return profile in self.profiles or (
                DECLARED in self.profiles and self.kind == "server" and not self.builtin)
        return DECLARED in self.profiles

    def unmet(self, target: object) -> str | None:
        """Why the scenario cannot run on ``target``'s declared protocol (what to
        declare), or None."""
        if DECLARED not in self.profiles:
            return None
        from sockspec.protocol.builtin import protocol_of

        protocol = protocol_of(target)
        if protocol is None:
            return None
        missing = protocol.missing(self.needs)
        return f"{self.id}: {missing}" if missing else None

    @property
    def builtin(self) -> bool:
        """Part of sockspec's own catalogue (not a scenario of the user's)."""
        return self.module.startswith(CATALOGUE_PACKAGE + ".")


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
    needs: tuple[str, ...] = (),
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
    ``profiles=(DECLARED,)``: the scenario is written for any declared protocol (it
    takes ``server.protocol``); ``needs``: what the declaration must provide
    (NEED_NAMES), or the item is skipped saying what to declare.
    """
    if level not in LEVELS[:2]:
        raise ValueError(f"scenario level must be {MUST} or {SHOULD}, got {level!r}")
    if set(needs) - set(NEED_NAMES):
        raise ValueError(f"unknown needs {sorted(set(needs) - set(NEED_NAMES))}; "
                         f"known: {', '.join(NEED_NAMES)}")

    def declare(func: Callable) -> Callable:
        name = func.__name__
        if not name.startswith("test_"):
            raise ValueError(f"scenario function {name} must be named test_<id>")
        doc = (func.__doc__ or "").strip()
        if not doc:
            raise ValueError(f"scenario {name} needs a docstring stating the behaviour")
        unknown = set(profiles) - {*PROFILES, DECLARED} | set(transports) - set(TRANSPORTS)
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
            path=func.__code__.co_filename,
            needs_process_control=fresh_server if needs_process_control is None
            else needs_process_control,
            time_limit=time_limit,
            level=level,
            reason=reason,
            needs=tuple(needs),
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
    needs: tuple[str, ...] = (),
) -> Callable[[Callable], Callable]:
    """Declare a client scenario: it takes the ``client`` fixture and plays the server.

    Same rules as ``scenario``; its family name starts with "client-", so client
    and server families never mix in a report column or a ``-m`` selection.
    """
    if not family.name.startswith(CLIENT_FAMILY_PREFIX):
        raise ValueError(f"client family {family.name!r} must start with {CLIENT_FAMILY_PREFIX!r}")

    def declare(func: Callable) -> Callable:
        scenario(family, profiles=profiles, transports=transports, not_on=not_on,
                 time_limit=time_limit, level=level, reason=reason, needs=needs)(func)
        func.__sockspec__ = dataclasses.replace(func.__sockspec__, kind="client")
        return func

    return declare


class Metrics(Figures):
    """Numbers a scenario measured (the ``metrics`` fixture); they land in the results JSON
    ``metrics``: ``metrics.record("p50_ms", 0.12)``. ``metrics.judge("p50_ms", value)``
    also judges a figure of a measurement family against its threshold
    (sockspec.thresholds.Figures)."""


def spec_of(func: object) -> ScenarioSpec | None:
    return getattr(func, "__sockspec__", None)


def catalogue_directory() -> Path:
    """The folder of the built-in catalogue, without importing it."""
    spec = importlib.util.find_spec(CATALOGUE_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def catalogue_module_name(path: Path) -> str:
    return f"{CATALOGUE_PACKAGE}.{Path(path).stem}"


def specs_of_module(module: object) -> list[ScenarioSpec]:
    return [s for obj in vars(module).values() if (s := spec_of(obj)) is not None]


def load_catalogue() -> list[ScenarioSpec]:
    """Import every module of the built-in catalogue and return its specs, sorted."""
    package = importlib.import_module(CATALOGUE_PACKAGE)
    specs: list[ScenarioSpec] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        specs += specs_of_module(importlib.import_module(f"{CATALOGUE_PACKAGE}.{info.name}"))
    return check_unique_ids(specs)


# What pytest collects by default from a directory (python_files).
TEST_FILE_PATTERNS = ("test_*.py", "*_test.py")
SKIPPED_DIRECTORIES = {"__pycache__", "node_modules", "venv", "build", "dist"}


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """The Python files a run over ``paths`` collects: a file as given, and in a
    directory every test_*.py and *_test.py (pytest's defaults), hidden folders skipped."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found.append(path.resolve())
            continue
        for pattern in TEST_FILE_PATTERNS:
            for candidate in sorted(path.rglob(pattern)):
                parts = candidate.relative_to(path).parts[:-1]
                if any(p.startswith(".") or p in SKIPPED_DIRECTORIES for p in parts):
                    continue
                found.append(candidate.resolve())
    return list(dict.fromkeys(found))


def load_scenarios(paths: Iterable[str | Path], *, builtin: bool) -> list[ScenarioSpec]:
    """The scenarios of a run: the built-in catalogue (when ``builtin``) and those defined
    in the test modules at ``paths``, imported as pytest imports them (so pytest, running
    in the same process afterwards, finds them imported and does not import them again)."""
    from _pytest.pathlib import ImportMode, import_path

    specs = load_catalogue() if builtin else []
    catalogue = catalogue_directory()
    for path in scenario_files(paths):
        if path.parent == catalogue:
            if not builtin:
                module = importlib.import_module(catalogue_module_name(path))
                specs += specs_of_module(module)
            continue
        module = import_path(path, mode=ImportMode.prepend, root=path.parent,
                             consider_namespace_packages=False)
        specs += specs_of_module(module)
    return sorted(check_unique_ids(list({id(s): s for s in specs}.values())),
                  key=lambda s: (s.family.name, s.id))


def check_unique_ids(specs: list[ScenarioSpec]) -> list[ScenarioSpec]:
    ids = [s.id for s in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"scenario ids used twice: {duplicates}")
    return sorted(specs, key=lambda s: (s.family.name, s.id))


def families(specs: list[ScenarioSpec]) -> dict[str, Family]:
    return {s.family.name: s.family for s in specs}


def catalogue_measures(specs: list[ScenarioSpec]) -> dict[str, Measure]:
    """Every figure a threshold may judge, by its name ``<family>.<figure>``."""
    return {f"{family.name}.{measure.name}": measure
            for family in families(specs).values() for measure in family.measures}
