"""Each scenario family is proven: it fails on a server with that defect.

Every module in fixtures/faulty declares DEFECT. Over its first transport (tcp
where it applies) the whole catalogue for its profile runs against it, every
SHOULD and default threshold counted as required
(sockspec_runner.every_level_required): its own family must fail with evidence,
and nothing else may fail except the families the defect truly breaks too
(also_fails). Over each other transport its own family runs alone and must fail
there too: "only its own family" is a property of the defect, shown once; running
the whole catalogue again per transport would triple the self-test's time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sockspec_runner import faulty_programs, run_sockspec, server_cmd

pytestmark = pytest.mark.selftest



def faulty_servers() -> list[tuple[str, Path, object]]:
    return faulty_programs("server")


CASES = [
    pytest.param(path, defect, transport, id=f"{name}-{transport}")
    for name, path, defect in faulty_servers()
    for transport in defect.transports
]


def test_every_family_has_a_faulty_server():
    from sockspec.catalogue import families, load_catalogue

    declared = {defect.family for _, _, defect in faulty_servers()}
    server_specs = [s for s in load_catalogue() if s.kind == "server"]
    missing = sorted(set(families(server_specs)) - declared - {"basic"})
    assert not missing, f"families without a faulty server: {missing}"


def first_transport(defect) -> str:
    return "tcp" if "tcp" in defect.transports else defect.transports[0]


@pytest.mark.parametrize("path, defect, transport", CASES)
def test_faulty_server_fails_its_family_only(path, defect, transport):
    # --strict and the default thresholds as the user's: a SHOULD family's defect (no
    # SO_REUSEADDR, listen(1), ...) or a measurement's fails here instead of warning.
    whole = transport == first_transport(defect)
    outcome = run_sockspec(*server_cmd(path, defect.profile, transport),
                           "--transport", transport, *([] if whole else [defect.family]),
                           required=True)
    assert outcome.document is not None, outcome.stderr[-2000:]
    assert outcome.status == 1, "a faulty server must make the run fail"
    mine = outcome.results(family=defect.family)
    assert mine, f"no {defect.family} scenario ran for {path.name}"
    failed = [r for r in mine if r["outcome"] == "failed"]
    assert failed, f"{defect.family} passed on {path.name}: {defect.summary}"
    assert all(r["evidence"].strip() for r in failed)
    allowed = {defect.family, *defect.also_fails}
    unexpected = sorted({(r["family"], r["scenario"], r["outcome"])
                         for r in outcome.results() if r["outcome"] in ("failed", "error")
                         and r["family"] not in allowed})
    assert not unexpected, f"{path.name} also failed: {unexpected}"
    if whole:
        # Root causes (issue 18): the defect's own family is the one to fix first.
        # Judged from this same run, on one transport per server (as it always was).
        causes = outcome.document["causes"]
        assert causes, f"{path.name}: no cause recorded"
        assert causes[0]["fix_first"] == defect.family, causes
