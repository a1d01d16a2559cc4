"""Clients under test end to end: targets files, selection, outputs, reproduce, CLI."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from sockspec_runner import PROJECT, run_sockspec

PYTHON = sys.executable
REFERENCE = [PYTHON, "-m", "sockspec.reference.client"]


def client_file(tmp_path: Path) -> Path:
    """Reference clients in the other two reporting styles: echo input on stdin (no {in}),
    the http body written to {out} (output = "file"); plus a client that is not there."""
    def table(name, profile, tcp, unix, extra=""):
        return (f'[[client]]\nname = "{name}"\nprofile = "{profile}"\n'
                f"tcp = {json.dumps(tcp)}\nunix = {json.dumps(unix)}\n"
                f'failure_status = [1]\ntimeout_s = 3\n{extra}\n')

    text = table("stdin_echo", "echo", REFERENCE + ["echo", "{hostport}", "--timeout", "3"],
                 REFERENCE + ["echo", "unix:{path}", "--timeout", "3"])
    text += table("file_http", "http",
                  REFERENCE + ["get", "{hostport}", "{url_path}", "-o", "{out}", "--timeout", "3"],
                  REFERENCE + ["get", "unix:{path}", "{url_path}", "-o", "{out}"],
                  'output = "file"')
    text += table("missing", "echo", ["./no-such-client", "{hostport}"], ["./x", "{path}"])
    path = tmp_path / "clients.toml"
    path.write_text(text)
    return path


def test_stdin_and_output_file_clients_pass_and_a_missing_one_errors(tmp_path):
    targets = client_file(tmp_path)
    outcome = run_sockspec("--targets", str(targets), "--transport", "tcp", "--transport",
                           "unix", "client-basic", "client-binary", "client-short-body")
    doc = outcome.document
    assert doc is not None, outcome.stderr[-2000:]
    for name in ("stdin_echo", "file_http"):
        assert doc["per_target"][name]["passed"] == 6, outcome.results(target=name)
    assert doc["per_target"]["missing"]["error"] == 6
    evidence = outcome.results(target="missing")[0]["evidence"]
    assert "cannot start ./no-such-client" in evidence and "\n" not in evidence.strip()
    assert {t["name"]: t["kind"] for t in doc["targets"]} == {
        "stdin_echo": "client", "file_http": "client", "missing": "client"}
    assert {r["kind"] for r in doc["results"]} == {"client"}
    assert outcome.status == 1


def test_reproduce_command_of_a_client_item_runs_exactly_it(tmp_path):
    targets = client_file(tmp_path)
    outcome = run_sockspec("--targets", str(targets), "--target", "stdin_echo", "--transport",
                           "unix", "client_short_reply")
    (result,) = outcome.results()
    assert result["outcome"] == "passed" and result["target"] == "stdin_echo"
    command = result["reproduce"]
    assert command.endswith("--target stdin_echo --transport unix client_short_reply")
    rerun = run_sockspec(*command.split()[2:])
    assert [(r["target"], r["transport"], r["scenario"]) for r in rerun.document["results"]] \
        == [("stdin_echo", "unix", "client_short_reply")]


def test_default_run_covers_reference_servers_and_clients():
    proc = subprocess.run(
        [PYTHON, "-m", "sockspec", "run", "echo_basic", "client_basic_exchange", "--transport",
         "unix", "--", "--co"],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = {line.split("[")[1].rstrip("]") for line in proc.stdout.splitlines() if "::" in line}
    assert ids == {"reference-echo-unix", "reference-echo-client-unix",
                   "reference-http-client-unix"}


def test_cli_lists_clients_and_client_scenarios(tmp_path):
    targets = client_file(tmp_path)
    listed = subprocess.run([PYTHON, "-m", "sockspec", "targets", str(targets)], cwd=PROJECT,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "file_http  client  profile=http  transports=tcp,unix  output=file" in listed.stdout
    scenarios = subprocess.run([PYTHON, "-m", "sockspec", "list", "--kind", "client"],
                               cwd=PROJECT, capture_output=True, text=True, timeout=60)
    families = {line.split()[1] for line in scenarios.stdout.splitlines()}
    assert "client-no-answer" in families and all(f.startswith("client-") for f in families)


def test_client_cmd_judges_a_client_without_a_targets_file():
    """--client-cmd: a good client passes, one with a defect fails its family, and the
    reproduce command of an item (with the quoted template) reruns just that item."""
    good = shlex.join(REFERENCE + ["echo", "{hostport}", "--file", "{in}", "--timeout", "3"])
    outcome = run_sockspec("--client-cmd", good, "--profile", "echo", "--transport", "tcp",
                           "client-partial-reads")
    assert outcome.status == 0, outcome.stderr[-2000:]
    results = outcome.results()
    assert results and {(r["target"], r["kind"], r["outcome"]) for r in results} == {
        ("client-cmd", "client", "passed")}
    rerun = run_sockspec(*shlex.split(results[0]["reproduce"])[2:])
    assert [(r["target"], r["scenario"]) for r in rerun.results()] == [
        ("client-cmd", results[0]["scenario"])]

    faulty = PROJECT / "fixtures" / "faulty" / "client_one_recv.py"
    bad = shlex.join([PYTHON, str(faulty), "echo", "{hostport}", "--file", "{in}",
                      "--timeout", "3"])
    outcome = run_sockspec("--client-cmd", bad, "--profile", "echo", "--transport", "tcp",
                           "client-partial-reads")
    assert outcome.status == 1
    assert any(r["outcome"] == "failed" for r in outcome.results(family="client-partial-reads"))
