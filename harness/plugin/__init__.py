"""sockspec's pytest plugin, registered through the ``pytest11`` entry point ``sockspec``.

Everything pytest-specific lives in this package: ``options`` (the one option
table), ``session`` (items, selection, reporting), ``fixtures`` (``server``,
``client``, ``metrics``), ``capture`` (packet captures), ``stash`` (what they
share). Internal: scenario authors use ``import sockspec``.

This module is what pytest imports in every session of an environment where
sockspec is installed, so it is inert until the session uses sockspec: it only
declares the options. No scenario catalogue is imported, no signal handler is
installed, no fixture is added. The session plugin is activated when

- any sockspec option is given (``--target``, ``--transport``, ``--sockspec-json``,
  ``--sockspec-catalogue``, ...; see ``options.OPTIONS``), or
- the run is ``sockspec run``, or
- a collected test module defines a scenario (a function decorated with
  ``@scenario`` or ``@client_scenario``): activation happens as pytest collects it,
  before its items are made, or
- ``-p sockspec.plugin.session`` is given (the old way; still accepted).

On an xdist controller, which collects nothing, the first report carrying a
sockspec record activates it too, so the terminal summary still appears.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path

import pytest

from sockspec.plugin import options

ACTIVE = pytest.StashKey[bool]()
SESSION_PLUGIN_NAME = "sockspec-session"
FIXTURES_PLUGIN_NAME = "sockspec-fixtures"
PROPERTY = "sockspec"  # the key of an item's record in report.user_properties
_configs: list[pytest.Config] = []  # the sessions of this process (pytester runs nest them)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_pytest_options(parser)


def active(config: pytest.Config) -> bool:
    return config.stash.get(ACTIVE, False)


def activate(config: pytest.Config) -> None:
    """Load the session plugin and the scenario fixtures (once)."""
    if active(config):
        return
    config.stash[ACTIVE] = True
    from sockspec.plugin import fixtures, session

    manager = config.pluginmanager
    if not manager.is_registered(fixtures):
        manager.register(fixtures, FIXTURES_PLUGIN_NAME)
    if not manager.is_registered(session):
        manager.register(session, SESSION_PLUGIN_NAME)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _configs.append(config)
    legacy = config.pluginmanager.has_plugin("sockspec.plugin.session")
    if legacy or next(options.given(config), None) is not None:
        activate(config)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """A module that defines a scenario activates sockspec before its items are made."""
    try:
        spec = getattr(obj, "__sockspec__", None)
    except Exception:  # an object whose attribute lookup fails is not a scenario
        return None
    if type(spec).__module__ != "sockspec.catalogue":
        return None
    activate(collector.config)
    from sockspec.plugin.session import register_family

    register_family(collector.config, spec.family)
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _configs:
        _configs.remove(config)


@functools.cache
def catalogue_directory() -> Path | None:
    """The built-in catalogue's folder, found without importing it."""
    spec = importlib.util.find_spec("sockspec.scenarios")
    locations = spec.submodule_search_locations if spec else None
    return Path(next(iter(locations))).resolve() if locations else None


class CatalogueModule(pytest.Module):
    """A module of the built-in catalogue, imported under its package name
    (sockspec.scenarios.NAME) whatever folder it lives in, so it is imported once."""

    def _getobj(self):
        return importlib.import_module(f"sockspec.scenarios.{self.path.stem}")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Every module of the built-in catalogue is collected, whatever its name; collecting
    one activates sockspec. So is every scenario file (``*.sockspec``:
    sockspec.scenario_files)."""
    if file_path.suffix == ".sockspec":
        from sockspec.scenario_files.collect import collect_file

        return collect_file(file_path, parent)
    if file_path.suffix != ".py" or file_path.name.startswith("_"):
        return None
    if file_path.parent.resolve() != catalogue_directory():
        return None
    activate(parent.config)
    return CatalogueModule.from_parent(parent, path=file_path)


SCENARIO_FILE_MISTAKES = pytest.StashKey[int]()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A scenario file with a mistake (its collection error; an xdist controller gets it
    from the worker)."""
    if report.failed and report.nodeid.endswith(".sockspec") and _configs:
        stash = _configs[-1].stash
        stash[SCENARIO_FILE_MISTAKES] = stash.get(SCENARIO_FILE_MISTAKES, 0) + 1


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A mistake in a scenario file exits 2 under xdist too (xdist ends a run with a
    worker's collection error as 1), as without xdist and as ``sockspec run``."""
    if session.config.stash.get(SCENARIO_FILE_MISTAKES, 0) and \
            session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        session.exitstatus = pytest.ExitCode.INTERRUPTED


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """An xdist controller collects nothing: a scenario's record activates it."""
    if not _configs or active(_configs[-1]):
        return
    if not any(key == PROPERTY for key, _ in report.user_properties):
        return
    config = _configs[-1]
    activate(config)
    from sockspec.plugin import session

    session.first_report(config, report)  # registered during this call: hand it over
