"""The faulty variants of the example programs (examples/), found once for every test.

Faulty servers: examples/faulty/<defect>.py is a defect of the textbook server that
applies to every example protocol (run with ``--protocol NAME``);
examples/<protocol>/faulty/<defect>.py belongs to one protocol. Faulty clients
likewise: examples/faulty_clients/ and examples/<protocol>/faulty_clients/.

Each declares FAMILY, ALSO_FAILS and TRANSPORTS at module level, read here from the
source, unrun (every variant imports its own protocol's module). A shared one may
give ALSO_FAILS or TRANSPORTS per protocol, as a dict {protocol: tuple}.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from sockspec_runner import PROJECT

EXAMPLES = PROJECT / "examples"
PROTOCOLS = ("kv", "frames")


@dataclass(frozen=True)
class Variant:
    path: Path
    protocol: str
    shared: bool  # in examples/faulty*/: needs --protocol
    family: str
    also_fails: tuple[str, ...]
    transports: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.protocol}-{self.path.stem}"

    @property
    def command(self) -> list[str]:
        """The program before its own options (address, or client arguments)."""
        protocol = ["--protocol", self.protocol] if self.shared else []
        return [sys.executable, str(self.path), *protocol]


def declarations(path: Path) -> dict[str, object]:
    """The module-level literal FAMILY, ALSO_FAILS and TRANSPORTS of a variant."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                getattr(node.targets[0], "id", "") in ("FAMILY", "ALSO_FAILS", "TRANSPORTS"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def _for(value, protocol: str) -> tuple[str, ...]:
    return tuple(value[protocol] if isinstance(value, dict) else value)


def _variants(folder: str, families=None) -> list[Variant]:
    found = []
    for protocol in PROTOCOLS:
        paths = [(path, True) for path in (EXAMPLES / folder).glob("*.py")]
        paths += [(path, False) for path in (EXAMPLES / protocol / folder).glob("*.py")]
        for path, shared in paths:
            values = declarations(path)
            if "FAMILY" not in values or (families is not None and
                                          values["FAMILY"] not in families):
                continue
            transports = _for(values["TRANSPORTS"], protocol)
            if transports:
                found.append(Variant(path, protocol, shared, values["FAMILY"],
                                     _for(values.get("ALSO_FAILS", ()), protocol), transports))
    return sorted(found, key=lambda v: (PROTOCOLS.index(v.protocol), v.path.stem))


def faulty_servers(families=None) -> list[Variant]:
    """Every faulty example server (of ``families``, when given), per protocol."""
    return _variants("faulty", families)


def faulty_clients(families=None) -> list[Variant]:
    """Every faulty example client (of ``families``, when given), per protocol."""
    return _variants("faulty_clients", families)
