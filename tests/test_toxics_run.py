"""Toxics on a whole run: the matrix dimension (item ids, records, reproduce, skips), bad
specs refused before anything starts, [[toxic]] tables, and the catalogue under each
standard profile on the reference servers and clients."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
from sockspec_runner import PROJECT, run_sockspec

from sockspec.targets.selection import build_selection
from sockspec.toxics.spec import STANDARD_PROFILES


def test_a_toxic_profile_is_a_matrix_dimension():
    run = run_sockspec("--target", "reference-echo", "--transport", "tcp",
                       "--toxic", "latency:ms=5", "--toxic", "none", "echo_basic", "latency",
                       timeout=120)
    assert run.status == 0, run.stdout + run.stderr
    by_id = {r["nodeid"].partition("[")[2].rstrip("]") + " " + r["scenario"]: r
             for r in run.document["results"]}
    plain = by_id["reference-echo-tcp echo_basic"]
    assert plain["outcome"] == "passed" and plain["toxics"] == {}   # ids without toxics kept
    relayed = by_id["reference-echo-tcp-latency5 echo_basic"]
    seed = run.document["run"]["toxics"]["seed"]
    assert relayed["outcome"] == "passed"
    assert relayed["toxics"] == {"profile": "latency5", "spec": "latency:ms=5", "seed": seed,
                                 "toxics": [{"kind": "latency", "ms": 5, "jitter": 0,
                                             "direction": "both", "p": 1.0}]}
    assert shlex.split(relayed["reproduce"])[-6:] == [
        "tcp", "--toxic", "latency:ms=5", "--toxic-seed", str(seed), "echo_basic"]
    measured = by_id["reference-echo-tcp-latency5 echo_ping_pong_median"]
    assert measured["outcome"] == "skipped"
    assert "latency means nothing under the latency toxic" in measured["evidence"]
    assert by_id["reference-echo-tcp echo_ping_pong_median"]["outcome"] == "passed"
    assert f"toxics: latency:ms=5, none (seed {seed}" in run.stdout


@pytest.mark.parametrize("args, words", [
    (["--toxic", "latency"], "sockspec: --toxic: 'latency': latency needs ms="),
    (["--toxic", "latency:ms=5", "--toxic-seed", "x"], "--toxic-seed: must be a whole number"),
])
def test_a_bad_spec_is_one_line_and_exit_2(args, words):
    proc = subprocess.run([sys.executable, "-m", "sockspec", "run", *args, "echo_basic"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr


def test_toxic_tables_in_a_targets_file(tmp_path):
    file = tmp_path / "targets.toml"
    file.write_text('[[server]]\nname = "mine"\nprofile = "echo"\ntcp = ["x", "{port}"]\n'
                    '[[toxic]]\nkind = "slicer"\nsize = 2\nprofile = "pairs"\n')
    selection = build_selection(targets_file=str(file), target_names=[], transports=[],
                                server_cmd=None, profile=None, scenarios=[], cwd=str(tmp_path))
    assert [p.spec for p in selection.toxics] == ["slicer:size=2"]
    assert selection.warnings == ()   # 'toxic' is a known top-level key
    replaced = build_selection(targets_file=str(file), target_names=[], transports=[],
                               server_cmd=None, profile=None, scenarios=[], cwd=str(tmp_path),
                               toxic_specs=["etcproxy"], toxic_seed=5)
    assert [p.label for p in replaced.toxics] == ["etcproxy"] and replaced.toxic_seed == 5


# The catalogue under each standard profile, on the reference servers and clients, over
# tcp (the relay is the same code on every transport; test_toxics.py runs it over tcp6
# and unix), for the families that exchange little data quickly: the others take from
# tens of seconds to minutes at etcproxy's 1 KB/s, and CI has no minutes to spare.
CATALOGUE_SUBSET = ("basic", "partial-reads", "path-traversal", "concurrency",
                    "client-basic", "client-partial-reads", "client-short-body")


@pytest.mark.selftest
def test_the_catalogue_passes_under_each_standard_profile():
    profiles = [arg for name in STANDARD_PROFILES for arg in ("--toxic", name)]
    run = run_sockspec("-n", "2", "--transport", "tcp", *profiles, *CATALOGUE_SUBSET,
                       timeout=600)
    failed = [f"{r['nodeid']}: {r['evidence'][:300]}" for r in run.document["results"]
              if r["outcome"] not in ("passed", "skipped")]
    assert run.status == 0 and not failed, "\n".join(failed) or run.stderr
    seen = {(r["kind"], r["toxics"]["profile"]) for r in run.document["results"]
            if r["outcome"] == "passed"}
    assert seen == {(kind, name) for kind in ("server", "client") for name in STANDARD_PROFILES}
