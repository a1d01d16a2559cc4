"""What the session plugin, the scenario fixtures and the capture plugin share: stash
keys, the ``Case`` an item is parametrized with, and the report property names.

Their own module so that none of those three imports another (no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sockspec.liveness import Liveness
from sockspec.targets.clients import ClientTarget
from sockspec.targets.servers import Target
from sockspec.toxics.fronts import Fronts
from sockspec.toxics.spec import ToxicProfile
from sockspec.under_test.client import ClientUnderTest
from sockspec.under_test.server import ServerPool, ServerUnderTest

POOL = pytest.StashKey[ServerPool]()            # config: this worker's servers
START_FAILURES = pytest.StashKey[dict]()        # config: (target, transport) -> first error
SERVER = pytest.StashKey[ServerUnderTest]()     # item: the server it drove
CLIENT = pytest.StashKey[ClientUnderTest]()     # item: the client it ran
STOP_PROBLEMS = pytest.StashKey[list]()         # item: what stopping its server revealed
LIVENESS = pytest.StashKey[Liveness]()          # config: targets found dead (short path)
SHORT_PATH = pytest.StashKey[str]()             # item: not run, dead target: the evidence
CAUSE_FACTS = pytest.StashKey[dict]()           # item: facts for reports/causes.py
NOTES = pytest.StashKey[list]()                 # item: lines for the evidence after the verdict
FRONTS = pytest.StashKey[Fronts]()              # item: its toxics' relays (sockspec.toxics)

# Results travel from xdist workers to the controller in report.user_properties.
PROPERTY = "sockspec"
# Extra facts about an item from other plugins (e.g. packet capture): a JSON
# object with any of the ItemResult fields "pcap", "packet_summary", "metrics", "evidence".
EXTRA_PROPERTY = "sockspec-extra"
# On an item's last report (teardown), when its call raised HarnessError: the JUnit XML
# pytest writes carries it, and sockspec.reports.junit makes that testcase an <error>.
HARNESS_ERROR_PROPERTY = "sockspec-harness-error"
HARNESS_ERROR = pytest.StashKey[str]()          # item: its call's HarnessError, one line


@dataclass(frozen=True)
class Case:
    """One target over one transport (under one toxic profile, if any): the parameter of
    the ``server`` or ``client`` fixture."""

    target: Target | ClientTarget
    transport: str
    toxics: ToxicProfile | None = None     # --toxic / [[toxic]]: None for none

    @property
    def id(self) -> str:
        suffix = f"-{self.toxics.label}" if self.toxics is not None else ""
        return f"{self.target.name}-{self.transport}{suffix}"

    @property
    def kind(self) -> str:
        return "client" if isinstance(self.target, ClientTarget) else "server"


CASE_FIXTURES = ("server", "client")  # a scenario's kind is the name of the fixture it takes


def case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    found = next((params[name] for name in CASE_FIXTURES if name in params), None)
    return found if isinstance(found, Case) else None
