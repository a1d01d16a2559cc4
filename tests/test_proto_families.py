"""The generic correctness families on declared protocols (issue 19): proven on the examples.

scenarios/proto_*.py judge any declared protocol in eleven families (basic,
concurrency, partial-reads, ...). Each passes on the correct example servers
(examples/kv, examples/frames: Python, and C when a compiler exists) over tcp,
tcp6 and unix, and each family fails on a faulty variant of each example
(examples/faulty/<defect>.py, a defect of the textbook server run on each
protocol, or examples/<protocol>/faulty/<defect>.py, one protocol's own; each declares
FAMILY, ALSO_FAILS and TRANSPORTS: tests/example_variants.py) while the other correctness families pass on it; every SHOULD counts
(sockspec_runner.every_level_required). The measurement and wire families prove
themselves (tests/test_proto_measure.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from example_variants import EXAMPLES, PROTOCOLS, faulty_servers
from sockspec_runner import RunOutcome, run_sockspec

TRANSPORTS = ("tcp", "tcp6", "unix")
# The families this file proves (the generic versions in scenarios/proto_*.py).
FAMILIES = ("basic", "concurrency", "partial-reads", "partial-writes", "half-close",
            "graceful-close", "client-abort", "restart", "backlog", "fd-leak",
            "binary-integrity")
VARIANTS = faulty_servers(FAMILIES)


def write_targets(directory: Path, protocol: str, command: list[str]) -> Path:
    """A targets file for ``command`` (the example's CLI) speaking ``protocol``."""
    def argv(*address: str) -> str:
        return json.dumps([*command, *address])

    path = directory / f"{protocol}-targets.toml"
    path.write_text(f'protocols = [{json.dumps(str(EXAMPLES / protocol / "protocol.toml"))}]\n\n'
                    f'[[server]]\nname = "{protocol}-under-test"\nprofile = "{protocol}"\n'
                    f'tcp = {argv("-h", "{host}", "-p", "{port}")}\n'
                    f'unix = {argv("-u", "{path}")}\nipv6 = true\n')
    return path


def run_families(directory: Path, protocol: str, command: list[str], transports,
                 families=FAMILIES) -> RunOutcome:
    """`sockspec run` of ``families`` on ``command``, every level required."""
    targets = write_targets(directory, protocol, command)
    args = ["--targets", str(targets)]
    for transport in transports:
        args += ["--transport", transport]
    return run_sockspec(*args, *families, required=True)


def ours(outcome: RunOutcome) -> list[dict]:
    return [r for r in outcome.results() if r["family"] in FAMILIES]


# -- fast checks ------------------------------------------------------------------------


def test_every_family_has_a_faulty_variant_for_each_example():
    declared = {(v.protocol, v.family) for v in VARIANTS}
    missing = sorted({(p, f) for p in PROTOCOLS for f in FAMILIES if f != "basic"} - declared)
    assert not missing, f"families without a faulty variant: {missing}"
    for variant in VARIANTS:
        text = variant.path.read_text()
        assert f"**{variant.family}**" in text, f"{variant.path}: its docstring names no family"
        assert set(variant.transports) <= set(TRANSPORTS)


def test_every_family_has_generic_scenarios():
    from sockspec.catalogue import DECLARED, load_catalogue

    generic = [s for s in load_catalogue() if DECLARED in s.profiles and s.kind == "server"]
    assert {s.family.name for s in generic} >= set(FAMILIES)
    for spec in generic:
        if spec.family.name in FAMILIES:
            assert spec.id.startswith("proto_"), spec.id
            assert spec.needs, f"{spec.id} declares no needs"


# A declaration with one exchange and nothing else: each scenario below needs more.
BARE_PROTOCOL = """\
[[protocol]]
name = "kvbare"
framing = "crlf"

[[protocol.exchange]]
name = "ping"
send = "PING"
expect = "+PONG"
"""
WHAT_TO_DECLARE = {
    "proto_twenty_clients_at_once": "properties.concurrent = true",
    "proto_request_with_fin": "properties.answers_after_fin = true",
    "proto_close_after_fin": "properties.answers_after_fin = true",
    "proto_close_after_fin_mid_reply": "properties.answers_after_fin = true and a "
                                       "[protocol.large_reply] sequence",
    "proto_large_reply_slow_bursty_reader": "a [protocol.large_reply] sequence",
    "proto_client_abort_reply_owed": "a [protocol.large_reply] sequence and "
                                     "properties.answers_after_fin = true",
    "proto_every_byte_value": "a [protocol.binary] sequence",
}


def test_a_declaration_without_a_need_skips_with_what_to_declare(tmp_path):
    protocol = tmp_path / "bare.toml"
    protocol.write_text(BARE_PROTOCOL)
    outcome = run_sockspec(
        "--server-cmd", f"{sys.executable} {EXAMPLES / 'kv' / 'server.py'} -h {{host}} -p {{port}}",
        "--profile", "kvbare", "--protocols", str(protocol), "--transport", "tcp",
        *WHAT_TO_DECLARE, timeout=120)
    assert outcome.document is not None, outcome.stderr[-2000:]
    results = {r["scenario"]: r for r in outcome.results()}
    assert set(results) == set(WHAT_TO_DECLARE)
    for scenario, declare in WHAT_TO_DECLARE.items():
        assert results[scenario]["outcome"] == "skipped"
        assert f"declare {declare} in [[protocol]] 'kvbare' ({protocol})" in \
            results[scenario]["evidence"], results[scenario]["evidence"]


# -- the proofs (slow) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def c_servers(tmp_path_factory) -> Path | None:
    """The example C servers built into a temporary folder (examples/build.py), or None
    without a C compiler."""
    if shutil.which(os.environ.get("CC") or "cc") is None:
        return None
    out = tmp_path_factory.mktemp("c-servers")
    subprocess.run([sys.executable, str(EXAMPLES / "build.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    return out


def correct_command(protocol: str, implementation: str, c_servers: Path | None) -> list[str]:
    if implementation == "python":
        return [sys.executable, str(EXAMPLES / protocol / "server.py")]
    if c_servers is None:
        pytest.skip("no C compiler ($CC or cc): the C example servers cannot be built")
    return [str(c_servers / f"{protocol}-server")]


@pytest.mark.selftest
@pytest.mark.parametrize("implementation", ("python", "c"))
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_correct_servers_pass_every_family(protocol, implementation, c_servers, tmp_path):
    from sockspec.catalogue import load_catalogue

    outcome = run_families(tmp_path, protocol,
                           correct_command(protocol, implementation, c_servers), TRANSPORTS)
    assert outcome.document is not None, outcome.stderr[-2000:]
    results = ours(outcome)
    assert {r["family"] for r in results} == set(FAMILIES)
    assert {r["transport"] for r in results} == set(TRANSPORTS)
    not_on = {s.id: s.not_on for s in load_catalogue()}
    bad = [(r["scenario"], r["transport"], r["outcome"], r["evidence"][:300]) for r in results
           if r["outcome"] != "passed" and not (r["outcome"] == "skipped" and
                                                r["transport"] in not_on[r["scenario"]])]
    assert not bad, bad
    assert outcome.status == 0, outcome.stdout[-2000:]


@pytest.mark.selftest
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_faulty_variant_fails_its_family_only(variant, tmp_path):
    """Over TCP, every correctness family runs: its own fails with evidence, no other."""
    outcome = run_families(tmp_path, variant.protocol, variant.command,
                           ("tcp",))
    assert outcome.document is not None, outcome.stderr[-2000:]
    assert outcome.status == 1, "a faulty server must make the run fail"
    mine = [r for r in ours(outcome) if r["family"] == variant.family]
    assert mine, f"no {variant.family} scenario ran on {variant.name}"
    failed = [r for r in mine if r["outcome"] == "failed"]
    assert failed, f"{variant.family} passed on {variant.name}"
    assert all(r["evidence"].strip() for r in failed)
    unexpected = sorted({(r["family"], r["scenario"], r["outcome"]) for r in ours(outcome)
                         if r["outcome"] in ("failed", "error")
                         and r["family"] not in (variant.family, *variant.also_fails)})
    assert not unexpected, f"{variant.name} also failed: {unexpected}"


OTHER_TRANSPORTS = [v for v in VARIANTS if set(v.transports) - {"tcp"}]


@pytest.mark.selftest
@pytest.mark.parametrize("variant", OTHER_TRANSPORTS, ids=lambda v: v.name)
def test_faulty_variant_fails_its_family_on_its_other_transports(variant, tmp_path):
    others = [t for t in variant.transports if t != "tcp"]
    outcome = run_families(tmp_path, variant.protocol, variant.command,
                           others, families=(variant.family,))
    assert outcome.document is not None, outcome.stderr[-2000:]
    for transport in others:
        results = [r for r in outcome.results(family=variant.family, transport=transport)]
        assert results, f"no {variant.family} scenario ran over {transport}"
        assert any(r["outcome"] == "failed" and r["evidence"].strip() for r in results), \
            f"{variant.family} passed on {variant.name} over {transport}"


# The measurement families (scenarios/proto_measure.py; tests/test_proto_measure.py proves
# them on their own variants).
MEASURE_FAMILIES = ("latency", "latency-distribution", "connection-rate", "sustained-load",
                    "concurrent-connections", "slow-client-isolation", "throughput")


@pytest.mark.exhaustive
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_correctness_variants_fail_no_measurement_family_they_do_not_declare(protocol, tmp_path):
    """Every correctness variant of ``protocol`` in one run of the measurement families
    over tcp: none fails one its ALSO_FAILS does not name (CI proves "only its own
    family" against the correctness families; this adds the measurement ones, ~70 s)."""
    chosen = [v for v in VARIANTS if v.protocol == protocol]
    lines = [f"protocols = [{json.dumps(str(EXAMPLES / protocol / 'protocol.toml'))}]"]
    for variant in chosen:
        lines += ["", "[[server]]", f'name = "{variant.path.stem}"', f'profile = "{protocol}"',
                  f"tcp = {json.dumps([*variant.command, '-h', '{host}', '-p', '{port}'])}"]
    targets = tmp_path / "targets.toml"
    targets.write_text("\n".join(lines) + "\n")
    outcome = run_sockspec("--targets", str(targets), "--transport", "tcp", *MEASURE_FAMILIES,
                           "--", "-k", "proto_", required=True, timeout=1200)
    assert outcome.document is not None, outcome.stderr[-2000:]
    for variant in chosen:
        ran = outcome.results(target=variant.path.stem)
        assert {r["family"] for r in ran} == set(MEASURE_FAMILIES), variant.name
        unexpected = sorted({(r["family"], r["scenario"], r["outcome"]) for r in ran
                             if r["outcome"] in ("failed", "error")
                             and r["family"] not in (variant.family, *variant.also_fails)})
        assert not unexpected, f"{variant.name} also failed: {unexpected}"
