"""The engine end to end: hostile servers, parallel workers, many targets, outputs.

Each test runs `sockspec run` in a subprocess and judges its results JSON, its
exit status and what it leaves behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sockspec_runner import PROJECT, run_sockspec, server_cmd

pytestmark = pytest.mark.selftest

HOSTILE = PROJECT / "fixtures" / "hostile"

# hostile server -> (profile, expected outcome of the basic scenario, evidence fragments:
# any one of them, since some defects show one of two ways depending on timing)
HOSTILE_OUTCOMES = {
    "never_listens": ("echo", "error", "did not accept"),
    "exits_at_once": ("echo", "error", "config missing"),
    "wrong_port": ("echo", "error", "did not accept"),
    "accepts_never_reads": ("echo", "failed", "timeout"),
    # ECONNRESET when the send meets the reset, "RST" when the read does.
    "resets_every_connection": ("echo", "failed", ("ECONNRESET", "stream end: RST")),
    # The readiness probe is its one client; a scenario's connect is then refused,
    # or, if it raced into the closing listener's queue, reset.
    "closes_listener_after_first": ("echo", "failed", ("refused", "0 bytes came back")),
    "http_garbage": ("http", "failed", ("before the end of the response head", "bad status line")),
    "short_body": ("http", "failed", "body"),
    # Serves correctly, but as a daemon outside its process group: the harness had
    # to find and stop it, which makes the item reporting it an error (issue 16 §5).
    "orphan_grandchild": ("echo", "error", "outside its process group"),
    # These misbehave on the way but serve correctly in the end: they must pass.
    "floods_output": ("echo", "passed", ""),
    "floods_stdout_before_listen": ("echo", "passed", ""),
    "ignores_sigterm": ("echo", "passed", ""),
    "slow_start": ("echo", "passed", ""),
}


def processes_running(fragment: str) -> list[str]:
    """Command lines of live processes mentioning ``fragment`` (ours only: by path)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline and "pytest" not in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def test_every_hostile_server_has_an_expectation():
    scripts = {p.stem for p in HOSTILE.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(HOSTILE_OUTCOMES)


@pytest.mark.parametrize("name", sorted(HOSTILE_OUTCOMES))
def test_hostile_server_gives_bounded_clear_outcome_and_leaves_nothing(name):
    profile, expected, fragment = HOSTILE_OUTCOMES[name]
    script = HOSTILE / f"{name}.py"
    started = time.monotonic()
    outcome = run_sockspec(*server_cmd(script, profile, "tcp"), "--transport", "tcp",
                           "--ready-timeout", "5", "basic", timeout=120)
    elapsed = time.monotonic() - started
    assert outcome.document is not None, outcome.stderr[-2000:]
    (result,) = outcome.document["results"]
    assert result["outcome"] == expected, result["evidence"]
    fragments = (fragment,) if isinstance(fragment, str) else fragment
    assert any(f in result["evidence"] for f in fragments), result["evidence"]
    assert outcome.status == (0 if expected == "passed" else 1)
    assert elapsed < 60, f"{name} took {elapsed:.1f} s"
    assert "Traceback" not in outcome.stderr
    deadline = time.monotonic() + 5
    while processes_running(str(script)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_running(str(script))


def test_server_exiting_at_start_is_reported_at_once():
    started = time.monotonic()
    outcome = run_sockspec(*server_cmd(HOSTILE / "exits_at_once.py", "echo", "tcp"),
                           "--transport", "tcp", "--ready-timeout", "30", "basic")
    assert time.monotonic() - started < 15
    (result,) = outcome.document["results"]
    assert "status 3" in result["evidence"] and "config missing" in result["evidence"]


def write_targets(tmp_path: Path) -> Path:
    python = sys.executable
    reference = f'"{python}", "-m", "sockspec.reference.server", "--profile", "echo"'
    text = f"""
[[server]]
name = "good"
profile = "echo"
tcp = [{reference}, "-h", "{{host}}", "-p", "{{port}}"]
unix = [{reference}, "-u", "{{path}}"]
ipv6 = true

[[server]]
name = "broken"
profile = "echo"
tcp = ["{python}", "{HOSTILE / 'exits_at_once.py'}", "-p", "{{port}}"]

[[server]]
name = "missing_binary"
profile = "echo"
tcp = ["./no-such-server", "-p", "{{port}}"]
"""
    path = tmp_path / "servers.toml"
    path.write_text(text)
    return path


def test_many_servers_one_run_errors_do_not_stop_the_others(tmp_path):
    targets = write_targets(tmp_path)
    junit = tmp_path / "junit.xml"
    outcome = run_sockspec("--targets", str(targets), "-n", "2", "--junitxml", str(junit),
                           "basic")
    doc = outcome.document
    assert outcome.status == 1
    per_target = doc["per_target"]
    assert per_target["good"]["passed"] == 3 and per_target["good"]["total"] == 3
    assert per_target["broken"]["error"] == 1
    assert per_target["missing_binary"]["error"] == 1
    missing = outcome.results(target="missing_binary")[0]["evidence"]
    assert "no-such-server" in missing
    assert doc["run"]["workers"] == 2
    tree = ET.parse(junit)
    cases = tree.getroot().iter("testcase")
    assert len(list(cases)) == 5


def test_reproduce_command_runs_exactly_one_item(tmp_path):
    targets = write_targets(tmp_path)
    outcome = run_sockspec("--targets", str(targets), "--target", "good", "--transport", "unix")
    (result,) = outcome.results(scenario="echo_basic")
    command = result["reproduce"]
    assert command.startswith("sockspec run --targets ") and command.endswith(" echo_basic")
    rerun = run_sockspec(*command.split()[2:])
    assert [(r["target"], r["transport"], r["scenario"]) for r in rerun.document["results"]] \
        == [("good", "unix", "echo_basic")]


def test_plain_pytest_family_marker_and_k_selection():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "-p", "no:cacheprovider", "-m", "basic", "-k", "unix", "-q", "--co"],
        cwd=PROJECT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    assert items and all("unix" in line for line in items)
    assert {"reference-echo-unix", "reference-http-unix"} <= {
        line.split("[")[1].rstrip("]") for line in items}


def test_connect_target_is_not_started_or_stopped(tmp_path):
    port_probe = __import__("socket").socket()
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "sockspec.reference.server", "--profile", "echo", "-p", str(port)],
        cwd=PROJECT, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        outcome = run_sockspec("--connect", f"tcp:127.0.0.1:{port}", "--profile", "echo")
        assert outcome.status == 0, outcome.stdout[-2000:]
        by_outcome = {r["outcome"] for r in outcome.document["results"]}
        assert "passed" in by_outcome
        skipped = outcome.results(outcome="skipped")
        assert all("already running" in r["evidence"] for r in skipped)
        assert server.poll() is None, "the harness must not stop a --connect server"
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
