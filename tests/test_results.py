"""Results JSON: phase merging, summary, schema check on read."""

import json

import pytest

from sockspec.reports.results import (
    SCHEMA,
    ResultCollector,
    ResultsFormatError,
    build_document,
    collect_run_metadata,
    load_results,
    write_results,
)

STATIC = {"target": "t", "profile": "echo", "transport": "tcp", "scenario": "s",
          "family": "basic", "description": "d", "hint": "h", "reproduce": "sockspec run s"}


def phases(collector, nodeid, *steps):
    for when, outcome, evidence, metrics in steps:
        collector.add_phase(nodeid, when, outcome, 0.5,
                            dict(STATIC, evidence=evidence, metrics=metrics))


def test_merge_phases_into_outcomes():
    c = ResultCollector()
    phases(c, "a", ("setup", "passed", "", {}), ("call", "passed", "", {"p50_ms": 1.0}),
           ("teardown", "passed", "", {}))
    phases(c, "b", ("setup", "passed", "", {}), ("call", "failed", "echo lost bytes", {}),
           ("teardown", "passed", "", {}))
    phases(c, "c", ("setup", "failed", "did not accept", {}), ("teardown", "passed", "", {}))
    phases(c, "d", ("setup", "skipped", "not on unix", {}), ("teardown", "passed", "", {}))
    phases(c, "e", ("setup", "passed", "", {}), ("call", "passed", "", {}),
           ("teardown", "failed", "leftover process", {}))
    got = {i.nodeid: i for i in c.items()}
    assert {k: v.outcome for k, v in got.items()} == {
        "a": "passed", "b": "failed", "c": "error", "d": "skipped", "e": "error"}
    assert got["a"].metrics == {"p50_ms": 1.0} and got["a"].duration_s == 1.5
    assert got["b"].evidence == "echo lost bytes"


def test_document_round_trip(tmp_path):
    c = ResultCollector()
    phases(c, "a", ("setup", "passed", "", {}), ("call", "failed", "x", {}))
    run = collect_run_metadata(["sockspec", "run"], "0.1.0")
    doc = build_document(run, c.items(), [{"name": "t", "profile": "echo"}])
    assert doc["schema"] == SCHEMA
    assert doc["summary"] == {"passed": 0, "failed": 1, "error": 0, "skipped": 0,
                              "interrupted": 0, "warning": 0, "total": 1}
    assert doc["per_target"] == {"t": doc["summary"]}
    assert "net.core.somaxconn" in run["sysctls"] and run["rlimit_nofile"]["hard"] > 0
    path = tmp_path / "r.json"
    write_results(path, doc)
    assert load_results(path) == json.loads(path.read_text())


@pytest.mark.parametrize("content, message", [
    ("{", "not a readable JSON"),
    ("[]", "not a sockspec results file"),
    ('{"schema": "sockspec.results/9", "results": []}', "this sockspec reads"),
    ('{"schema": "sockspec.results/1", "results": 3}', "'results' must be a list"),
])
def test_load_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsFormatError, match=message):
        load_results(path)


def test_extra_facts_record_adds_fields_without_changing_outcome():
    c = ResultCollector()
    phases(c, "a", ("setup", "passed", "", {}), ("call", "failed", "RST seen", {}))
    c.add_phase("a", "teardown", "passed", 0.0,
                {"pcap": "pcaps/a.pcap", "packet_summary": "server sent RST at 0.12 s",
                 "metrics": {"retransmissions": 0}})
    (item,) = c.items()
    assert item.outcome == "failed" and item.evidence == "RST seen"
    assert item.pcap == "pcaps/a.pcap" and item.packet_summary.startswith("server sent RST")
    assert item.metrics == {"retransmissions": 0}


def test_stop_problems_from_a_passed_teardown_reach_the_evidence():
    c = ResultCollector()
    phases(c, "a", ("setup", "passed", "", {}), ("call", "passed", "", {}),
           ("teardown", "passed", "after stop: port 20001 still held by a listener", {}))
    (item,) = c.items()
    assert item.outcome == "passed"
    assert item.evidence == "after stop: port 20001 still held by a listener"
