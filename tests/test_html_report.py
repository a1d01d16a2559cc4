"""The HTML report: view model, comparison, escaping, size, bad input.

The report in a real browser: test_html_report_browser.py.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from report_samples import HINT, RUN, item, large_document, mixed_document, sample_document

from sockspec.reports.charts import format_number, value_axis
from sockspec.reports.compare import compare_documents
from sockspec.reports.html import render_html, write_report_files
from sockspec.reports.results import ResultsFormatError, build_document, write_results
from sockspec.reports.view import build_matrices, build_matrix, failure_groups, normalise_results

# ---------------------------------------------------------------- view model


def test_matrix_counts_per_target_family_transport():
    matrix = build_matrix(normalise_results(sample_document()), sample_document()["targets"])
    assert matrix.families == ["basic", "concurrency", "half_close", "latency"]
    assert matrix.transports == ["tcp", "unix"]
    rows = {row.target: row for row in matrix.rows}
    assert list(rows) == ["flaky", "ref", "slow"]

    def cell(target: str, family: str, transport: str):
        column = matrix.families.index(family) * 2 + matrix.transports.index(transport)
        return rows[target].cells[column]

    assert cell("flaky", "half_close", "tcp").counts["failed"] == 1
    assert cell("flaky", "half_close", "tcp").state == "failed"
    assert cell("flaky", "basic", "unix").state == "error"
    assert cell("flaky", "basic", "unix").text == "!1/1"
    assert cell("flaky", "concurrency", "tcp").state == "skipped"
    assert cell("ref", "basic", "tcp").state == "passed"
    assert cell("ref", "basic", "tcp").text == "\u27131"
    assert cell("slow", "basic", "unix").state == "none"  # slow has no unix transport
    assert (rows["flaky"].broken, rows["ref"].broken, rows["slow"].broken) == (3, 0, 1)
    assert rows["flaky"].counts == {"failed": 2, "error": 1, "skipped": 1, "passed": 2,
                                    "interrupted": 0, "warning": 0, "total": 6}
    # A broken cell links to its first failure entry; a passing one to the results list.
    first_failure = cell("flaky", "half_close", "tcp").href
    assert first_failure.startswith("#item-")
    assert cell("ref", "basic", "tcp").href == "#results"


def test_servers_and_clients_get_a_matrix_each():
    document = mixed_document()
    servers, clients = build_matrices(normalise_results(document), document["targets"])
    assert (servers.kind, servers.title) == ("server", "Servers under test")
    assert [row.target for row in servers.rows] == ["flaky", "ref", "slow"]
    assert "client_half_close" not in servers.families
    assert (clients.kind, clients.title) == ("client", "Clients under test")
    assert clients.families == ["client_half_close", "client_reads"]
    assert {row.target: row.broken for row in clients.rows} == {"worse-client": 1,
                                                                "ref-client": 0}
    only_servers = build_matrices(normalise_results(sample_document()),
                                  sample_document()["targets"])
    assert [m.kind for m in only_servers] == ["server"]


def test_rendered_mixed_run_has_two_titled_tables():
    html = render_html(mixed_document())
    section = html[html.index('id="matrix"'):html.index('id="failures"')]
    assert section.count("<table class=\"matrix\"") == 2
    assert 'id="matrix-table"' in section and 'id="matrix-table-client"' in section
    assert section.index("Servers under test") < section.index("Clients under test")
    clients = section[section.index('id="matrix-table-client"'):]
    assert 'data-name="worse-client" data-broken="1"' in clients
    assert 'data-name="flaky"' not in clients
    assert "Servers under test" not in render_html(sample_document())


def test_rendered_matrix_shows_counts_and_links_to_failures():
    html = render_html(sample_document())
    matrix = html[html.index('id="matrix-table"'):html.index('id="failures"')]
    assert matrix.count('data-name="') == 3
    assert 'data-name="flaky" data-broken="3"' in matrix
    assert "\u27171/1" in matrix and "!1/1" in matrix and "\u20131" in matrix
    for href in re.findall(r'href="#(item-\d+)"', matrix):
        assert f'id="{href}"' in html


def test_failure_details_escape_evidence_and_carry_reproduce_command():
    html = render_html(sample_document())
    failures = html[html.index('id="failures"'):html.index('id="measurements"')]
    assert failures.count('<details class="failure') == 4
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in failures
    assert "<script>alert" not in html and '<img src="http' not in html
    assert "stderr tail: Traceback" in failures
    assert "drain behaves." in failures  # the scenario's description
    assert HINT.replace("'", "&#39;") in failures  # family fix hint, shown once per family
    assert failures.count(HINT) == 1
    assert ("<code>sockspec run --target flaky --transport unix drain</code>") in failures
    assert "family <b>half_close</b>" in failures
    # Future fields: packet summary beside the evidence, capture linked (relative path).
    assert "IP 127.0.0.1.5000 &gt; 127.0.0.1.40000: [R.]" in failures
    assert '<a href="captures/slow-drain.pcap" download>' in failures


def test_failure_groups_order_by_failure_count():
    groups = failure_groups(normalise_results(sample_document()))
    assert [(g.family, len(g.items)) for g in groups] == [("half_close", 3), ("basic", 1)]
    assert groups[0].hint == HINT


def test_verdict_banner_and_run_metadata():
    html = render_html(sample_document())
    assert 'class="verdict v-fail"' in html
    assert "3 failed, 1 error, 1 skipped, 10 passed" in html
    for fact in ("builder", "Linux 6.1.0", "net.core.somaxconn", "soft 20000, hard 20000",
                 "sockspec run --html out/report.html", "sockspec.results/1"):
        assert fact in html
    passing = build_document(dict(RUN), [item("ref", "tcp", "echo_basic", "basic")], [])
    assert 'class="verdict v-pass"' in render_html(passing)
    assert "NOTHING RAN" in render_html(build_document(dict(RUN), [], []))


def test_charts_drawn_only_for_data_present():
    html = render_html(sample_document())
    assert "rtt: latency by percentile" in html
    assert "rtt: latency CDF" in html
    assert "conn_100: connection rate" in html
    assert "time to set up concurrent connections" in html
    assert "throughput" not in html  # nobody measured it
    assert "<code>fd_peak</code>" in html  # unknown metric: generic table
    plain = build_document(dict(RUN), [item("ref", "tcp", "echo_basic", "basic")], [])
    assert "<svg" not in render_html(plain)
    assert 'id="measurements"' not in render_html(plain)


def test_unknown_outcome_and_missing_fields_are_tolerated():
    document = {"schema": "sockspec.results/1", "results": [
        {"nodeid": "x::y", "outcome": "xfailed", "metrics": {"odd": "n/a"}},
        {"target": "t", "scenario": "s", "outcome": "passed", "metrics": None},
        "not a record",
    ]}
    html = render_html(document)
    # An outcome this report does not know counts as an error, never as a pass.
    assert "1 error, 1 passed \u2014 2 items on 2 targets" in html
    assert '<span class="badge b-error">ERROR</span> <span class="f-scenario">x::y</span>' in html
    assert "<code>odd</code>" in html


def test_no_external_resource_references():
    for document in (sample_document(), large_document(300, 7)):
        document["results"][0]["pcap"] = "https://example.invalid/capture.pcap"
        html = render_html(document, baseline=sample_document())
        assert not re.search(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:[a-z]+:)?//""",
                             html, re.IGNORECASE)
        assert not re.search(r"@import|url\(", html)
        assert "<link" not in html.replace('<link rel="icon" href="data:,">', "")
        assert "default-src 'none'" in html


def test_5000_items_render_small():
    mixed = render_html(large_document(5000, 10))
    assert len(mixed.encode()) < 5_000_000
    assert mixed.count('<details class="failure') == 500
    # Failure entries start collapsed when there are many; passed ones are collapsed too.
    assert '<details class="failure f-failed" id="item-0">' in mixed
    assert '<details class="rgroup" data-outcome="passed">' in mixed
    # Everything failing: the evidence itself is the bulk (about 300 bytes per item here).
    broken = render_html(large_document(5000, 1))
    assert len(broken.encode()) < 5000 * 1500


# ---------------------------------------------------------------- comparison


def test_comparison_flips_and_ratios():
    old = build_document(dict(RUN), [
        item("a", "tcp", "s1", "basic", "passed", metrics={"latency_p99_ms": 2.0,
                                                            "latency_cdf_50_ms": 1.0}),
        item("a", "tcp", "s2", "basic", "failed", metrics={"conn_per_s": 1000}),
        item("a", "tcp", "s3", "basic", "passed", metrics={"setup_s": 0.0, "x": 5}),
        item("a", "unix", "s1", "basic", "skipped"),
        item("a", "tcp", "gone", "basic"),
    ], [])
    new = build_document(dict(RUN), [
        item("a", "tcp", "s1", "basic", "failed", metrics={"latency_p99_ms": 4.0,
                                                            "latency_cdf_50_ms": 3.0}),
        item("a", "tcp", "s2", "basic", "passed", metrics={"conn_per_s": 1100}),
        item("a", "tcp", "s3", "basic", "passed", metrics={"setup_s": 0.5, "x": 5}),
        item("a", "unix", "s1", "basic", "error"),
        item("a", "tcp", "new", "basic"),
    ], [])
    comparison = compare_documents(old, new)
    assert [(f.key, f.old, f.new, f.kind) for f in comparison.flips] == [
        (("a", "tcp", "s1"), "passed", "failed", "regression"),
        (("a", "unix", "s1"), "skipped", "error", "regression"),
        (("a", "tcp", "s2"), "failed", "passed", "fix"),
    ]
    moves = [(m.key[2], m.metric, m.ratio, m.direction) for m in comparison.moves]
    assert moves[0] == ("s3", "setup_s", math.inf, "worse")  # from 0: largest of all
    assert moves[1] == ("s1", "latency_p99_ms", 2.0, "worse")
    assert moves[2][:2] == ("s2", "conn_per_s") and moves[2][2] == pytest.approx(1.1)
    assert moves[2][3] == "better"
    assert len(moves) == 3  # unchanged "x" and the CDF points are not listed
    assert comparison.added == [("a", "tcp", "new")]
    assert comparison.removed == [("a", "tcp", "gone")]

    html = render_html(new, baseline=old)
    section = html[html.index('id="comparison"'):html.index('id="results"')]
    assert "2</b> regressions" in html
    assert "\u00d72</td>" in section and "from 0" in section and "\u00d71.1</td>" in section
    assert section.index("setup_s") < section.index("latency_p99_ms") < section.index(
        "conn_per_s")


def test_write_report_files_one_and_two(tmp_path: Path):
    old_path, new_path = tmp_path / "old.json", tmp_path / "new.json"
    write_results(old_path, large_document(60, 3))
    write_results(new_path, sample_document())
    write_report_files([str(new_path)], str(tmp_path / "one.html"))
    write_report_files([str(old_path), str(new_path)], str(tmp_path / "two.html"))
    assert 'id="comparison"' not in (tmp_path / "one.html").read_text()
    assert 'id="comparison"' in (tmp_path / "two.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "old.json", "one.html",
                                                         "two.html"]


def test_bad_results_file_raises_format_error(tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something.else/1", "results": []}))
    for path in (broken, other, tmp_path / "missing.json"):
        with pytest.raises(ResultsFormatError) as caught:
            write_report_files([str(path)], str(tmp_path / "out.html"))
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.html").exists()


def test_chart_helpers():
    assert [format_number(v) for v in (0, 0.01234, 4.567, 12.0, 1234.5, 98765)] == [
        "0", "0.0123", "4.57", "12", "1,234", "98,765"]
    log_axis = value_axis([0.05, 2.0, 40.0])
    assert log_axis.log and log_axis.low == 0.01 and log_axis.high == 100
    linear = value_axis([3.0, 7.5])
    assert not linear.log and linear.low == 0 and linear.high >= 7.5


def test_benchmark_file_is_shown_with_ratios_and_goals(tmp_path):
    from sockspec.reports.bench import load_bench
    from sockspec.reports.html import write_report_files
    from sockspec.reports.results import ResultsFormatError, build_document, write_results

    results = tmp_path / "r.json"
    write_results(results, build_document({"started": "now"}, [], []))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({
        "schema": "sockspec.bench/1", "date": "2026-11-24", "runs": 5,
        "comparisons": [
            {"name": "connection_rate", "sockspec": 13200, "baseline": 13180, "unit": "conn/s",
             "ratio": 1.0015, "goal": ">= 0.9x", "met": True, "baseline_tool": "crr (C)"},
            {"name": "latency_p50<x>", "sockspec": 5.46, "baseline": 4.92, "unit": "us",
             "ratio": 1.11, "goal": "<= 1.05x", "met": False},
        ]}))
    out = tmp_path / "report.html"
    write_report_files([str(results)], str(out), bench_path=str(bench))
    html = out.read_text()
    assert "Benchmark: sockspec against its baselines" in html
    rows = re.findall(r"<tr><td title=[^>]*>([^<]*)</td>.*?</tr>", html)
    assert rows == ["connection_rate", "latency_p50&lt;x&gt;"]  # names escaped
    assert ">1.11<" in html and ">&lt;= 1.05x<" in html
    assert html.count('class="badge b-passed">yes') == 1
    assert html.count('class="badge b-failed">no') == 1
    bench.write_text(json.dumps({"schema": "sockspec.results/1", "results": []}))
    with pytest.raises(ResultsFormatError, match="not a sockspec benchmark file"):
        load_bench(bench)
