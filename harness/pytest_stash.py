"""Stash keys shared by the pytest plugin's hooks and the scenario fixtures.

Their own module so that harness/pytest_plugin.py need not import the fixture
module (pytest loads that one itself, as a plugin, to rewrite its asserts).
"""

from __future__ import annotations

import pytest

from harness.clients import ClientUnderTest
from harness.liveness import Liveness
from harness.servers import ServerPool, ServerUnderTest

POOL = pytest.StashKey[ServerPool]()            # config: this worker's servers
START_FAILURES = pytest.StashKey[dict]()        # config: (target, transport) -> first error
SERVER = pytest.StashKey[ServerUnderTest]()     # item: the server it drove
CLIENT = pytest.StashKey[ClientUnderTest]()     # item: the client it ran
STOP_PROBLEMS = pytest.StashKey[list]()         # item: what stopping its server revealed
LIVENESS = pytest.StashKey[Liveness]()          # config: targets found dead (short path)
SHORT_PATH = pytest.StashKey[str]()             # item: not run, dead target: the evidence
CAUSE_FACTS = pytest.StashKey[dict]()           # item: facts for reports/causes.py
NOTES = pytest.StashKey[list]()                 # item: lines for the evidence after the verdict
