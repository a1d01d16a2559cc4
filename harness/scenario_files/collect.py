"""Scenario files as pytest items, and as specs for ``sockspec run`` and ``sockspec list``.

A ``*.sockspec`` file is collected as a module of one scenario function: its
``__sockspec__`` spec and its ``server`` argument (``client`` for a file of role client)
make it an ordinary scenario, so the session plugin parametrizes it with one Case per
(target x transport; client targets for role client), gives it its
family's marker, its results record and its ``reproduce`` command, exactly as for a
scenario written in Python (``-k``, ``-m``, ``--lf``, ``-n``, JSON, JUnit, HTML).

A file with a mistake is a collection error whose report is its one line
``FILE:LINE: ...``; pytest then runs nothing ("Interrupted: 1 error during
collection", exit 2), with or without xdist. ``sockspec run`` checks the files before
it starts pytest: ``sockspec: FILE:LINE: ...``, exit 2.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable
from pathlib import Path

import pytest

from sockspec.catalogue import (
    DEFAULT_TIME_LIMIT,
    SKIPPED_DIRECTORIES,
    Family,
    ScenarioSpec,
    check_unique_ids,
    load_scenarios,
)
from sockspec.errors import SockspecError
from sockspec.scenario_files.steps import run_client_scenario, run_scenario, time_scale
from sockspec.scenario_files.syntax import (
    SUFFIX,
    ScenarioFile,
    builtin_families,
    is_scenario_file,
    parse_scenario_file,
)

MODULE_PREFIX = "sockspec.scenario_file:"


@dataclasses.dataclass(frozen=True)
class FileScenarioSpec(ScenarioSpec):
    """A scenario file's spec: it applies to targets of its one protocol (built-in or
    declared by name), not to every declared protocol."""

    source: ScenarioFile | None = dataclasses.field(default=None, compare=False, repr=False)

    def applies_to(self, profile: str) -> bool:
        return profile in self.profiles


def family_of(scenario: ScenarioFile) -> Family:
    builtin = builtin_families().get(scenario.family)
    if builtin is not None:
        return builtin
    return Family(name=scenario.family, behaviour=scenario.behaviour, hint=scenario.hint)


def spec_of_file(scenario: ScenarioFile, scale: float = 1.0) -> FileScenarioSpec:
    return FileScenarioSpec(
        id=scenario.id,
        family=family_of(scenario),
        profiles=(scenario.protocol_name,),
        transports=scenario.transports,
        description=scenario.description,
        fresh_server=scenario.fresh_server,
        module=MODULE_PREFIX + str(scenario.path),
        path=str(scenario.path),
        needs_process_control=scenario.fresh_server,
        kind=scenario.role,
        time_limit=DEFAULT_TIME_LIMIT * max(scale, 1.0),
        level=scenario.level,
        reason=scenario.reason,
        source=scenario,
    )


def scenario_function(spec: FileScenarioSpec, module_name: str):
    """The test function pytest collects for a scenario file."""
    scenario = spec.source

    if scenario.role == "client":
        def test(client, request):
            option = request.config.getoption("time_scale", None)
            run_client_scenario(scenario, client, time_scale(option))
    else:
        def test(server, request):
            option = request.config.getoption("time_scale", None)
            run_scenario(scenario, server.address, time_scale(option))

    test.__name__ = test.__qualname__ = f"test_{spec.id}"
    test.__doc__ = f"{spec.description}\n\n(scenario file {scenario.path})"
    test.__module__ = module_name
    test.__sockspec__ = spec
    test.__test__ = True   # collected whatever python_functions says
    return test


class ScenarioFileModule(pytest.Module):
    """A ``*.sockspec`` file, collected as a module holding its one scenario function."""

    _module: types.ModuleType | None = None

    def _getobj(self):
        if self._module is None:
            scenario = parse_scenario_file(self.path)
            scale = time_scale(self.config.getoption("time_scale", None))
            spec = spec_of_file(scenario, scale)
            name = MODULE_PREFIX + str(self.path)
            module = types.ModuleType(name, spec.description)
            module.__file__ = str(self.path)
            setattr(module, f"test_{spec.id}", scenario_function(spec, name))
            self._module = module
        return self._module

    def collect(self):
        module = self.obj   # a mistake: a collection error, shown by repr_failure
        from sockspec.plugin.session import register_family

        for value in vars(module).values():
            spec = getattr(value, "__sockspec__", None)
            if spec is not None:
                register_family(self.config, spec.family)
        return super().collect()

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SockspecError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


def collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFileModule:
    """The plugin's pytest_collect_file for a ``*.sockspec`` file: activates sockspec."""
    from sockspec.plugin import activate

    config = parent.config
    activate(config)
    return ScenarioFileModule.from_parent(parent, path=file_path)


# -- sockspec run / list ----------------------------------------------------------------------


def scenario_file_paths(paths: Iterable[str | Path]) -> list[Path]:
    """The scenario files a run over ``paths`` collects: a file as given, and in a folder
    every ``*.sockspec`` (hidden folders and the usual build folders skipped)."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            if is_scenario_file(path):
                found.append(path.resolve())
            continue
        for candidate in sorted(path.rglob("*" + SUFFIX)):
            parts = candidate.relative_to(path).parts[:-1]
            if any(p.startswith(".") or p in SKIPPED_DIRECTORIES for p in parts):
                continue
            found.append(candidate.resolve())
    return list(dict.fromkeys(found))


def load_all(paths: list[str], *, builtin: bool, scale: float | None = None) -> list:
    """The scenarios of ``sockspec run`` or ``sockspec list``: load_scenarios' (the built-in
    catalogue, the Python test modules) and the scenario files at ``paths``, every file
    checked first (ScenarioFileError: one line); ValueError on an id used twice."""
    scale = time_scale(scale)
    files = [spec_of_file(parse_scenario_file(p), scale) for p in scenario_file_paths(paths)]
    python = load_scenarios([p for p in paths if not is_scenario_file(p)], builtin=builtin)
    return check_unique_ids([*python, *files])
