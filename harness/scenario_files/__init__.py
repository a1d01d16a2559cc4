"""Scenario files: a scenario written as a ``*.sockspec`` file instead of Python.

``syntax`` reads and checks a file (format version 1, README "Scenario files"),
``steps`` runs it against a server under test, ``collect`` makes it a pytest item and
a spec for ``sockspec run`` / ``sockspec list``.
"""

from sockspec.scenario_files.syntax import SUFFIX, ScenarioFileError, is_scenario_file

__all__ = ["SUFFIX", "ScenarioFileError", "is_scenario_file"]
