"""Issue 17, point 5: what the harness knows about a family is declared with the family
(capture policy, cited packet facts, report charts, measurement sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_samples import RUN, item

from sockspec import Family, Size
from sockspec.catalogue import families, load_catalogue
from sockspec.measure.plan import ImpossibleLoad
from sockspec.measure.settings import family_sizes
from sockspec.reports.html import render_html
from sockspec.reports.measurements import family_measurements
from sockspec.reports.results import ResultCollector, build_document
from sockspec.reports.view import normalise_results

PROJECT = Path(__file__).resolve().parent.parent


def test_the_catalogue_declares_its_capture_policy_and_cited_facts():
    declared = families(load_catalogue())
    on_request = {name for name, f in declared.items() if f.capture == "on-request"}
    assert on_request == {"throughput", "sendfile-large", "connection-rate",
                          "latency-distribution", "sustained-load", "concurrent-connections"}
    cites = {name: f.cites for name, f in declared.items() if f.cites}
    assert cites == {"graceful-close": "ends", "client-abort": "ends", "latency": "replies"}


def test_a_family_refuses_an_unknown_policy():
    with pytest.raises(ValueError, match="capture"):
        Family("mine", "behaves", "fix it", capture="sometimes")
    with pytest.raises(ValueError, match="cites"):
        Family("mine", "behaves", "fix it", cites="everything")


def test_a_family_declares_its_own_bar_charts_for_the_report():
    collector = ResultCollector()
    charts = [{"metric": "requests_per_s", "what": "request rate", "unit": "req/s"}]
    collector.add_phase("n::t[a-tcp]", "call", "passed", 0.1, {
        "target": "a", "transport": "tcp", "scenario": "rate", "family": "my-rate",
        "evidence": "", "metrics": {"requests_per_s": 1234.0}, "family_charts": charts})
    document = build_document(dict(RUN), collector.items(), [], families=collector.families)
    assert document["families"] == {"my-rate": {"charts": charts}}
    (block,) = family_measurements(normalise_results(document), document["families"])
    assert len(block.charts) == 1 and "request rate" in str(block.charts[0].svg)
    assert "rate: request rate" in render_html(json.loads(json.dumps(document)))


def test_an_older_results_file_keeps_its_charts():
    old = build_document(dict(RUN), [item("a", "tcp", "rate", "connection-rate",
                                          metrics={"conn_per_s": 900.0})], [])
    assert "families" not in old
    (block,) = family_measurements(normalise_results(old), old.get("families"))
    assert len(block.charts) == 1 and "connection rate" in str(block.charts[0].svg)


def test_a_family_declares_and_checks_its_sizes():
    checked = []
    family = Family("my-load", "behaves", "fix it",
                    sizes=(Size("my_load_requests", 100), Size("my_load_seconds", 2.0)),
                    check_sizes=checked.append)
    env = {"SOCKSPEC_MY_LOAD_REQUESTS": "250"}
    assert family_sizes(family, env) == {"my_load_requests": 250, "my_load_seconds": 2.0}
    assert checked == [{"my_load_requests": 250, "my_load_seconds": 2.0}]
    with pytest.raises(ImpossibleLoad, match="SOCKSPEC_MY_LOAD_SECONDS"):
        family_sizes(family, {"SOCKSPEC_MY_LOAD_SECONDS": "0"})


def test_sockspec_run_refuses_a_size_a_users_family_declares(tmp_path):
    (tmp_path / "test_mine.py").write_text('''
from sockspec import Family, Size, scenario

COUNT = Size("mine_count", 5)
MINE = Family("mine", "behaves", "fix it", sizes=(COUNT,))


@scenario(MINE, profiles=("echo",))
def test_mine(server):
    """It behaves."""
''')
    done = subprocess.run([sys.executable, "-m", "sockspec", "run", "test_mine.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"SOCKSPEC_MINE_COUNT": "0", "PATH": "/usr/bin:/bin"},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == "sockspec: SOCKSPEC_MINE_COUNT=0 must be at least 1"
