"""Each client scenario family is proven: it fails on a client with that defect.

Every module in fixtures/faulty whose DEFECT says kind="client" is a faulty
client following the reference client's command line. The whole client
catalogue for its profile runs against it, declared as a [[client]] table:
its own family must fail with evidence, and nothing else may fail except the
families the defect truly breaks too (also_fails).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sockspec_runner import faulty_programs, run_sockspec

pytestmark = pytest.mark.selftest

FAULTY_CLIENT_TIMEOUT_S = 3


def faulty_clients() -> list[tuple[str, Path, object]]:
    return faulty_programs("client")


def client_table(name: str, script: Path, profile: str) -> str:
    """A [[client]] table for a faulty client (the base client's command line)."""
    def argv(where: str) -> str:
        if profile == "echo":
            args = [sys.executable, str(script), "echo", where, "--file", "{in}"]
        else:
            args = [sys.executable, str(script), "get", where, "{url_path}"]
        return json.dumps(args + ["--timeout", str(FAULTY_CLIENT_TIMEOUT_S)])

    return (f'[[client]]\nname = "{name}"\nprofile = "{profile}"\n'
            f"tcp = {argv('{hostport}')}\nunix = {argv('unix:{path}')}\n"
            f'output = "stdout"\nsuccess_status = 0\nfailure_status = [1]\n'
            f"timeout_s = {FAULTY_CLIENT_TIMEOUT_S}\n")


CASES = [
    pytest.param(name, path, defect, transport, id=f"{name}-{transport}")
    for name, path, defect in faulty_clients()
    for transport in defect.transports
]


def test_every_client_family_has_a_faulty_client():
    from sockspec.catalogue import families, load_catalogue

    declared = {defect.family for _, _, defect in faulty_clients()}
    client_specs = [s for s in load_catalogue() if s.kind == "client"]
    missing = sorted(set(families(client_specs)) - declared - {"client-basic"})
    assert not missing, f"client families without a faulty client: {missing}"


@pytest.mark.parametrize("name, path, defect, transport", CASES)
def test_faulty_client_fails_its_family_only(tmp_path, name, path, defect, transport):
    targets = tmp_path / "clients.toml"
    targets.write_text(client_table(name, path, defect.profile))
    outcome = run_sockspec("--targets", str(targets), "--transport", transport)
    assert outcome.document is not None, outcome.stderr[-2000:]
    assert outcome.status == 1, "a faulty client must make the run fail"
    assert {r["kind"] for r in outcome.results()} == {"client"}
    mine = outcome.results(family=defect.family)
    assert mine, f"no {defect.family} scenario ran for {path.name}"
    failed = [r for r in mine if r["outcome"] == "failed"]
    assert failed, f"{defect.family} passed on {path.name}: {defect.summary}"
    assert all(r["evidence"].strip() for r in failed)
    allowed = {defect.family, *defect.also_fails}
    unexpected = sorted({(r["family"], r["scenario"], r["outcome"], r["evidence"][:300])
                         for r in outcome.results() if r["outcome"] in ("failed", "error")
                         and r["family"] not in allowed})
    assert not unexpected, f"{path.name} also failed: {unexpected}"
