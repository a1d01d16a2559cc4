"""Levels: every check is MUST or SHOULD; a SHOULD missed is a warning, --strict a failure.

Unit tests of the level API, the results' "warning" outcome, the terminal and
HTML displays, and end-to-end runs of a server that follows symlinks inside its
root (the nginx/Apache default): path-traversal warns by default (exit 0) and
fails with --strict (exit 1).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sockspec_runner import PROJECT, run_sockspec

from sockspec.catalogue import Family, load_catalogue, scenario
from sockspec.plugin.session import summary_lines
from sockspec.reports.compare import compare_documents
from sockspec.reports.html import render_html
from sockspec.reports.results import ResultCollector, build_document, summarize
from sockspec.reports.view import normalise_results, run_verdict
from sockspec.verdict import INFO, MUST, SHOULD, ScenarioFailed, expect, fail, is_warning

FOLLOWS_SYMLINKS = PROJECT / "fixtures" / "servers" / "follows_symlinks_http.py"
SYMLINK = "http_symlink_stays_in_root"


# -- the level API -------------------------------------------------------------------


def test_every_scenario_declares_its_level_with_a_reason():
    specs = load_catalogue()
    unexplained = [s.id for s in specs if s.level not in (MUST, SHOULD) or not s.reason.strip()]
    assert not unexplained, f"scenarios without a level and a one-line reason: {unexplained}"


def test_the_symlink_check_is_a_should_and_dot_dot_a_must():
    levels = {s.id: s.level for s in load_catalogue()}
    assert levels[SYMLINK] == SHOULD
    assert levels["http_dotdot_stays_in_root"] == MUST


def test_a_check_names_its_level_or_takes_its_scenarios():
    with pytest.raises(ScenarioFailed) as default:
        expect(False, "plain")
    with pytest.raises(ScenarioFailed) as should:
        expect(False, "soft", level=SHOULD, observed=3)
    with pytest.raises(ScenarioFailed) as must:
        fail("hard", level=MUST)
    assert default.value.level is None            # the scenario's level applies
    assert should.value.level == SHOULD and should.value.facts == {"observed": 3}
    assert must.value.level == MUST
    with pytest.raises(ValueError):
        expect(False, "x", level="MAY")


def test_a_scenario_level_defaults_to_must_and_only_must_or_should_are_allowed():
    family = Family("f", "behaviour", "hint")

    def test_x(server):
        """Doc."""

    assert scenario(family)(test_x).__sockspec__.level == MUST
    assert scenario(family, level=SHOULD, reason="r")(test_x).__sockspec__.reason == "r"
    with pytest.raises(ValueError):
        scenario(family, level=INFO)


def test_which_misses_are_warnings():
    assert is_warning(SHOULD, strict=False) and not is_warning(SHOULD, strict=True)
    assert not is_warning(MUST, strict=False)
    # A default threshold (INFO) is a capacity figure: a warning even under --strict.
    assert is_warning(INFO, strict=True)


# -- the results: outcome "warning" ---------------------------------------------------

STATIC = {"target": "t", "profile": "http", "transport": "tcp", "scenario": "s",
          "family": "path-traversal", "description": "d", "hint": "h", "reproduce": "r",
          "kind": "server"}


def _collect(*phases: tuple[str, str, dict]) -> str:
    collector = ResultCollector()
    collector.start("n", STATIC)
    for when, outcome, extra in phases:
        collector.add_phase("n", when, outcome, 0.01, {**STATIC, "evidence": "", **extra})
    (item,) = collector.items()
    return item.outcome


def test_a_warned_call_is_a_warning_and_worse_phases_still_win():
    warned = ("call", "passed", {"warning": True, "level": SHOULD, "evidence": "e"})
    assert _collect(("setup", "passed", {}), warned, ("teardown", "passed", {})) == "warning"
    assert _collect(("setup", "passed", {}), warned, ("teardown", "failed", {})) == "error"
    assert _collect(("setup", "passed", {}), ("call", "passed", {}),
                    ("teardown", "passed", {})) == "passed"


def test_summary_and_per_target_count_warnings_apart():
    collector = ResultCollector()
    for nodeid, extra in (("a", {"warning": True}), ("b", {})):
        collector.add_phase(nodeid, "call", "passed", 0.0, {**STATIC, "evidence": "", **extra})
    items = collector.items()
    assert summarize(items) == {"passed": 1, "failed": 0, "error": 0, "skipped": 0,
                                "interrupted": 0, "warning": 1, "total": 2}
    document = build_document({}, items, [])
    assert document["per_target"]["t"]["warning"] == 1
    assert document["run"]["status"] == "complete"


def _document(outcomes: list[str]) -> dict:
    results = [dict(STATIC, nodeid=f"n{i}", scenario=f"s{i}", outcome=o, level=SHOULD,
                    evidence=f"what went wrong {i}\nlevel SHOULD: a warning",
                    duration_s=0.1, metrics={}, pcap="", packet_summary="")
               for i, o in enumerate(outcomes)]
    return build_document({"started": "now"}, [], [{"name": "t", "profile": "http"}]) | {
        "results": results,
        "summary": {o: outcomes.count(o) for o in ("passed", "failed", "warning")}}


def test_terminal_summary_shows_warnings_apart_and_passed_with_warnings():
    lines = summary_lines(_document(["passed", "warning", "warning"]))
    assert "t over tcp: 1 passed, 2 warning" in lines
    assert any(line.startswith("warning [path-traversal] SHOULD s1 (t over tcp): what went "
                               "wrong 1") for line in lines)
    assert lines[-1].startswith("PASSED with 2 warnings")
    failing = summary_lines(_document(["failed", "warning"]))
    assert not any(line.startswith("PASSED") for line in failing)


def test_report_banner_badge_and_section_for_warnings():
    document = _document(["passed", "warning"])
    items = normalise_results(document)
    verdict = run_verdict(items, document["run"])
    assert (verdict.state, verdict.title) == ("warn", "PASSED with 1 warning")
    page = render_html(document)
    assert 'class="verdict v-warn"' in page
    assert 'id="warnings"' in page and 'class="badge b-warning">WARN<' in page
    assert "what went wrong 1" in page
    assert run_verdict(normalise_results(_document(["failed", "warning"]))).title == "FAILED"


def test_a_warning_that_becomes_a_failure_is_a_regression():
    flips = compare_documents(_document(["warning"]), _document(["failed"]))
    assert [f.kind for f in flips.flips] == ["regression"]


# -- end to end: a server that follows symlinks ----------------------------------------


def _symlink_server() -> list[str]:
    command = f"{sys.executable} {FOLLOWS_SYMLINKS} --profile http -h {{host}} -p {{port}} -r {{root}}"
    return ["--server-cmd", command, "--profile", "http", "--transport", "tcp"]


def test_following_symlinks_passes_path_traversal_with_a_warning():
    outcome = run_sockspec(*_symlink_server(), "path-traversal")
    assert outcome.status == 0, outcome.stderr[-2000:]
    assert outcome.outcomes() == {(SYMLINK, "tcp"): "warning",
                                  ("http_dotdot_stays_in_root", "tcp"): "passed"}
    (record,) = outcome.results(scenario=SYMLINK)
    assert record["level"] == SHOULD
    assert record["evidence"].startswith("2 of 2 targets outside the root were served")
    assert "level SHOULD (" in record["evidence"] and "--strict" in record["evidence"]
    assert outcome.document["summary"]["warning"] == 1
    assert outcome.document["summary"]["failed"] == 0
    assert "PASSED with 1 warning" in outcome.stdout
    assert "1 warned" in outcome.stdout


def test_following_symlinks_fails_path_traversal_with_strict():
    outcome = run_sockspec(*_symlink_server(), "path-traversal", "--strict")
    assert outcome.status == 1
    assert outcome.outcomes() == {(SYMLINK, "tcp"): "failed",
                                  ("http_dotdot_stays_in_root", "tcp"): "passed"}
    (record,) = outcome.results(scenario=SYMLINK)
    assert "a failure under --strict" in record["evidence"]
    assert "--strict" in record["reproduce"]


def test_the_plugin_takes_sockspec_strict(tmp_path: Path):
    """Plain pytest: --sockspec-strict (pytest's own --strict is about markers)."""
    json_path = tmp_path / "r.json"
    base = [sys.executable, "-m", "pytest", "scenarios", "-p", "sockspec.plugin.session",
            "-p", "no:cacheprovider", "-q", *_symlink_server()[:4], "--scenario", SYMLINK,
            "--transport", "tcp", "--sockspec-json", str(json_path)]
    lenient = subprocess.run(base, cwd=PROJECT, capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL)
    assert lenient.returncode == 0, lenient.stdout[-2000:]
    assert '"outcome": "warning"' in json_path.read_text()
    strict = subprocess.run([*base, "--sockspec-strict"], cwd=PROJECT, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert strict.returncode == 1, strict.stdout[-2000:]
    assert '"outcome": "failed"' in json_path.read_text()


def test_the_reference_server_passes_path_traversal_without_a_warning():
    outcome = run_sockspec("--target", "reference-http", "--transport", "tcp",
                           "path-traversal", "--strict")
    assert outcome.status == 0, outcome.stderr[-2000:]
    assert set(outcome.outcomes().values()) == {"passed"}
