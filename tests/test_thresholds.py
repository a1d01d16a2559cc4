"""Thresholds belong to the user: measurement figures, documented defaults, the user's limits.

Unit tests of parsing (--threshold and [server.thresholds]), validation (one
line, exit 2), the judging of figures (a default missed is a warning, the
user's a failure; which threshold applied and whose is recorded), and small
end-to-end runs: a Nagle-stalled server (latency) and a server with a fixed
pool of 256 workers (concurrent-connections: a capacity figure) only warn by
default and fail against the user's threshold.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sockspec_runner import FAULTY_DIR, PROJECT, run_sockspec, server_cmd

from sockspec.catalogue import catalogue_measures, load_catalogue
from sockspec.errors import TargetConfigError, UsageError
from sockspec.targets.selection import build_selection
from sockspec.thresholds import (
    Figures,
    Measure,
    Threshold,
    parse_expression,
    parse_threshold_table,
    resolve_names,
)
from sockspec.verdict import INFO, MUST

MEASUREMENT_FAMILIES = {"latency", "latency-distribution", "connection-rate", "sustained-load",
                        "concurrent-connections", "throughput"}


def sockspec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sockspec", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


# -- the catalogue's figures --------------------------------------------------------------


def test_every_measurement_family_declares_its_figures_and_only_those_do():
    measures = catalogue_measures(load_catalogue())
    assert {name.split(".")[0] for name in measures} == MEASUREMENT_FAMILIES
    defaults = {name: m.default for name, m in measures.items() if m.default is not None}
    assert defaults == {"latency.p50_ms": ("<", 20.0),
                        "latency-distribution.p999_ms": ("<", 250.0),
                        "connection-rate.conn_per_s": (">", 25.0),
                        "concurrent-connections.verified_pct": (">=", 100.0)}


def test_sockspec_list_thresholds_documents_the_defaults():
    listing = sockspec("list", "--thresholds")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert "default < 20" in lines["latency.p50_ms"]
    assert "default none (reported only)" in lines["throughput.gbps"]


# -- parsing and validation ---------------------------------------------------------------


def test_a_cli_threshold_is_metric_operator_number():
    assert parse_expression("latency.p99_ms<=5", "--threshold") == Threshold(
        "latency.p99_ms", "<=", 5.0, "--threshold")
    assert parse_expression(" connection-rate.conn_per_s > 1e3 ", "--threshold").value == 1000
    for bad in ("latency.p99_ms=5", "latency.p99_ms", "<5", "latency.p99_ms<five",
                "latency.p99_ms<nan"):
        with pytest.raises(UsageError):
            parse_expression(bad, "--threshold")


@pytest.mark.parametrize("argument, says", [
    ("latency.p5_ms<1", "unknown metric 'latency.p5_ms'; did you mean 'latency.p50_ms'?"),
    ("latency_p99_ms<1", "unknown metric 'latency_p99_ms'; did you mean 'latency.p99_ms'?"),
    ("latency.p99_ms=1", "is not METRIC<=N"),
    ("latency.p99_ms<=fast", "the limit must be a number"),
])
def test_a_bad_threshold_is_one_line_and_exit_2(argument, says):
    run = sockspec("run", "--threshold", argument)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("sockspec: --threshold: ")
    assert says in run.stderr and "Traceback" not in run.stderr


def _targets_file(tmp_path: Path, thresholds: str, kind: str = "server") -> Path:
    path = tmp_path / "t.toml"
    path.write_text(f'[[{kind}]]\nname = "x"\nprofile = "echo"\ntcp = ["x", "{{port}}"]\n'
                    f"{thresholds}")
    return path


def test_server_thresholds_in_the_targets_file(tmp_path):
    path = _targets_file(tmp_path, '[server.thresholds]\nlatency.p50_ms = 5\n'
                         'connection-rate.conn_per_s = "> 1000"\n'
                         '[server.thresholds.latency-distribution]\np999_ms = 10\n')
    selection = build_selection(targets_file=str(path), target_names=[], transports=[],
                                server_cmd=None, profile=None, scenarios=[],
                                catalogue=load_catalogue(), cwd=str(tmp_path),
                                thresholds=["latency.p50_ms<1"])
    (target,) = selection.targets
    assert {t.expression() for t in target.thresholds} == {
        "latency.p50_ms<=5", "connection-rate.conn_per_s>1000",
        "latency-distribution.p999_ms<=10"}   # a bare number: an upper bound for a time
    assert all(t.source.startswith(f"{path}: [[server]] #1 ('x')") for t in target.thresholds)
    assert selection.thresholds == (Threshold("latency.p50_ms", "<", 1.0, "--threshold"),)
    listing = sockspec("targets", str(path))
    assert listing.returncode == 0 and "threshold: latency.p50_ms<=5" in listing.stdout


@pytest.mark.parametrize("table, says", [
    ("[server.thresholds]\nlatency.p5_ms = 5\n", "unknown metric 'latency.p5_ms'; did you "
     "mean 'latency.p50_ms'?"),
    ("[server.thresholds]\nlatency.p50_ms = true\n", "the limit must be a number"),
    ("[server.thresholds]\nlatency.p50_ms = \"5\"\n", "give a number, or a string with <"),
    ("thresholds = 5\n", "must be a table of metric = limit"),
])
def test_a_bad_thresholds_table_is_one_line_and_exit_2(tmp_path, table, says):
    path = _targets_file(tmp_path, table)
    for command in (("targets", str(path)), ("run", "--targets", str(path))):
        run = sockspec(*command)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and says in run.stderr, run.stderr
        assert f"{path}: [[server]] #1 ('x'): key 'thresholds'" in run.stderr


def test_thresholds_belong_to_servers_only(tmp_path):
    path = _targets_file(tmp_path, "thresholds = {}\n", kind="client")
    path.write_text(path.read_text().replace('tcp = ["x", "{port}"]',
                                             'tcp = ["x", "{port}", "{in}"]'))
    run = sockspec("targets", str(path))
    assert run.returncode == 2 and "key 'thresholds' applies to [[server]] tables" in run.stderr


def test_parse_threshold_table_walks_dotted_and_nested_keys():
    table = {"latency": {"p50_ms": 5, "p99_ms": "< 9"}}
    parsed = parse_threshold_table(table, "f")
    assert {(t.metric, t.op, t.value) for t in parsed} == {("latency.p50_ms", "", 5.0),
                                                           ("latency.p99_ms", "<", 9.0)}
    measures = catalogue_measures(load_catalogue())
    assert {t.op for t in resolve_names(parsed, measures, TargetConfigError)} == {"<=", "<"}


# -- judging figures ----------------------------------------------------------------------

MEASURES = (Measure("p50_ms", "latency_p50_ms", "lower", "ms", ("<", 20.0)),
            Measure("gbps", "throughput_gbps", "higher", "Gbit/s"))


def test_a_default_threshold_missed_is_an_info_warning_with_its_source_recorded():
    figures = Figures("fam", MEASURES)
    assert figures.judge("p50_ms", 44.0, "a Nagle stall", rounds=20) is False
    assert figures.judge("gbps", 0.1)      # no default, no user: reported only
    assert figures == {"latency_p50_ms": 44.0, "throughput_gbps": 0.1}
    assert figures.applied == [{"metric": "fam.p50_ms", "op": "<", "limit": 20.0,
                                "observed": 44.0, "unit": "ms", "met": False,
                                "whose": "default", "source": "default", "level": "INFO"}]
    missed = figures.verdict()
    assert missed.level == INFO
    assert missed.summary.startswith("fam.p50_ms = 44 ms: threshold < 20 (documented default) "
                                     "not met; a Nagle stall")
    assert "its miss is a warning" in missed.summary
    assert missed.facts["rounds"] == 20


def test_the_users_threshold_replaces_the_default_and_its_miss_is_a_failure():
    from_file = Threshold("fam.p50_ms", "<=", 50.0, "t.toml: [[server]] #1 ('x')")
    from_cli = Threshold("fam.gbps", ">=", 1.0, "--threshold")
    figures = Figures("fam", MEASURES, (from_file, from_cli))
    assert figures.judge("p50_ms", 44.0)   # the default (< 20) no longer applies
    assert not figures.judge("gbps", 0.5)
    assert [(a["whose"], a["source"], a["level"]) for a in figures.applied] == [
        ("user", "t.toml: [[server]] #1 ('x')", "MUST"), ("user", "--threshold", "MUST")]
    missed = figures.verdict()
    assert missed.level == MUST
    assert "fam.gbps = 0.5 Gbit/s: threshold >= 1 (user's, from --threshold) not met" \
        in missed.summary
    # A later threshold for the same metric (the command line after the file) wins.
    later = Figures("fam", MEASURES, (from_file, Threshold("fam.p50_ms", "<", 1.0, "cli")))
    assert not later.judge("p50_ms", 44.0)
    assert Figures("fam", MEASURES).verdict() is None


# -- end to end -------------------------------------------------------------------------


def _two_writes() -> list[str]:
    return [*server_cmd(FAULTY_DIR / "reply_in_two_writes.py", "echo", "tcp"),
            "--transport", "tcp", "latency"]


def test_a_default_latency_threshold_missed_is_a_warning_and_the_run_exits_0():
    outcome = run_sockspec(*_two_writes())
    assert outcome.status == 0, outcome.stdout[-3000:]
    (record,) = outcome.results()
    assert record["outcome"] == "warning" and record["level"] == "INFO"
    (applied,) = record["thresholds"]
    assert (applied["metric"], applied["whose"], applied["met"]) == ("latency.p50_ms",
                                                                      "default", False)
    assert "documented default" in record["evidence"]
    assert "PASSED with 1 warning" in outcome.stdout


def test_the_users_latency_threshold_missed_is_a_failure_also_from_the_targets_file(tmp_path):
    outcome = run_sockspec(*_two_writes(), "--threshold", "latency.p50_ms<20")
    assert outcome.status == 1
    (record,) = outcome.results()
    assert record["outcome"] == "failed" and record["level"] == "MUST"
    assert record["thresholds"][0]["whose"] == "user"
    assert "(user's, from --threshold) not met" in record["evidence"]
    assert "'--threshold=latency.p50_ms<20'" in record["reproduce"]

    script = FAULTY_DIR / "reply_in_two_writes.py"
    targets = tmp_path / "servers.toml"
    targets.write_text(f'[[server]]\nname = "two_writes"\nprofile = "echo"\n'
                       f'tcp = ["{sys.executable}", "{script}", "--profile", "echo", '
                       f'"-h", "{{host}}", "-p", "{{port}}"]\n'
                       f"[server.thresholds]\nlatency.p50_ms = 20\n")
    from_file = run_sockspec("--targets", str(targets), "--transport", "tcp", "latency")
    assert from_file.status == 1
    (record,) = from_file.results()
    assert record["outcome"] == "failed"
    assert record["thresholds"][0]["source"] == (f"{targets}: [[server]] #1 ('two_writes'): "
                                                 "key 'thresholds'")


def test_a_fixed_worker_pool_is_a_capacity_warning_not_a_failure(monkeypatch):
    """The issue's case: fewer connections served at once than asked is a figure."""
    monkeypatch.setenv("SOCKSPEC_CONCURRENT_CONNECTIONS", "300")
    args = [*server_cmd(FAULTY_DIR / "fixed_worker_pool.py", "echo", "tcp"),
            "--transport", "tcp", "concurrent-connections"]
    outcome = run_sockspec(*args)
    assert outcome.status == 0, outcome.stdout[-3000:]
    (record,) = outcome.results()
    assert record["outcome"] == "warning"
    assert record["metrics"]["concurrent_connections"] == 256
    assert record["evidence"].startswith("concurrent-connections.verified_pct = 85.3333 %: "
                                         "threshold >= 100 (documented default) not met")
    users = run_sockspec(*args, "--threshold", "concurrent-connections.verified>=290")
    assert users.status == 1
    assert users.results()[0]["outcome"] == "failed"


def test_the_reference_meets_every_default_threshold():
    outcome = run_sockspec("--target", "reference-echo", "--transport", "tcp", "latency",
                           "latency-distribution", "connection-rate", "--strict")
    assert outcome.status == 0, outcome.stdout[-3000:]
    for record in outcome.results():
        assert record["outcome"] == "passed", record["evidence"]
        assert all(t["met"] and t["whose"] == "default" for t in record["thresholds"])
