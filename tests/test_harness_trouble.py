"""The harness's own trouble is `error`, never the program's failure (issue 16, section 4).

Each test runs `sockspec run` in a subprocess with the harness itself treated
badly: /tmp full (a tmpfs in a private mount namespace, gone with the
process), a low fd limit, the harness stopped (SIGSTOP) while a client runs.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
RUN_LIMIT_S = 180

pytestmark = pytest.mark.selftest


def _results(json_path: Path) -> list[dict]:
    return json.loads(json_path.read_text())["results"] if json_path.exists() else []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="mounting a tmpfs over /tmp needs root and unshare")
def test_a_full_tmp_is_an_error_of_the_harness_not_a_failed_server(tmp_path):
    # In a private mount namespace: a 512 KiB tmpfs over /tmp, filled up, with
    # this test's directory bound in at /tmp/out for the JSON and pytest's own
    # temporary files. The harness's workdirs (document roots) land in the full part.
    # A project or interpreter under /tmp (a clone in /tmp/x, its .tox) is bound back
    # in at its own path from /mnt, where the real /tmp is kept in this namespace.
    script = """
set -e
exec 3<"$OUT"
[ -z "$TMP_HOMES" ] || mount --bind /tmp /mnt
mount -t tmpfs -o size=512k,mode=1777 sockspec-test-full /tmp
mkdir /tmp/out
mount --bind /proc/self/fd/3 /tmp/out
exec 3<&-
for name in $TMP_HOMES; do mkdir "/tmp/$name"; mount --bind "/mnt/$name" "/tmp/$name"; done
dd if=/dev/zero of=/tmp/filler bs=4096 2>/dev/null || true
export TMPDIR=/tmp/out
exec "$PYTHON" -m sockspec run --json /tmp/out/results.json \
    --target reference-http --transport unix basic
"""
    homes = {Path(p).resolve().relative_to("/tmp").parts[0]
             for p in (PROJECT, sys.prefix, sys.base_prefix)
             if Path(p).resolve().is_relative_to("/tmp")}
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "TMP_HOMES": " ".join(sorted(homes))}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=RUN_LIMIT_S, stdin=subprocess.DEVNULL)
    results = _results(tmp_path / "results.json")
    assert results, proc.stderr[-2000:]
    http = [r for r in results if r["profile"] == "http"]
    assert http and all(r["outcome"] == "error" for r in http), \
        [(r["scenario"], r["outcome"], r["evidence"]) for r in http]
    evidence = http[0]["evidence"]
    assert "the harness could not write the document root file" in evidence, evidence
    assert "No space left on device" in evidence, evidence
    assert proc.returncode == 1


@pytest.mark.parametrize("fd_limit", [256, 64])
def test_a_low_fd_limit_is_refused_or_an_error_never_a_failed_server(tmp_path, fd_limit):
    json_path = tmp_path / "results.json"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    proc = subprocess.run(
        [sys.executable, "-m", "sockspec", "run", "--json", str(json_path),
         "--target", "reference-echo", "--transport", "tcp", "concurrent-connections"],
        cwd=PROJECT, capture_output=True, text=True, timeout=RUN_LIMIT_S,
        stdin=subprocess.DEVNULL, preexec_fn=low_limit)
    if proc.returncode == 2:  # refused up front: one line naming the limit
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sockspec: "), proc.stderr
        assert "RLIMIT_NOFILE" in lines[0] or "fd limit" in lines[0], lines[0]
        return
    results = _results(json_path)
    assert results, proc.stderr[-2000:]
    outcomes = {r["scenario"]: (r["outcome"], r["evidence"]) for r in results}
    assert all(outcome == "error" for outcome, _ in outcomes.values()), outcomes
    assert any("RLIMIT_NOFILE" in evidence or "descriptors" in evidence
               for _, evidence in outcomes.values()), outcomes
    assert proc.returncode == 1


# Stops its parent (the harness) before it starts the reference client; the client
# then waits for an echo that the stopped harness cannot send, past its 1 s limit.
STOP_THE_HARNESS = """#!/bin/sh
kill -STOP "$PPID"
exec "$PYTHON" -m sockspec.reference.client echo "$1" --file "$2" --timeout 1
"""


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for(condition, seconds: float) -> bool:
    give_up = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.01)
    return True


def test_a_stopped_harness_voids_the_client_verdict(tmp_path):
    wrapper = tmp_path / "stops_the_harness.sh"
    wrapper.write_text(STOP_THE_HARNESS)
    targets = tmp_path / "clients.toml"
    targets.write_text(f"""
[[client]]
name = "stopper"
profile = "echo"
tcp = ["sh", "{wrapper}", "{{hostport}}", "{{in}}"]
timeout_s = 1
success_status = 0
failure_status = [1]
""")
    json_path = tmp_path / "results.json"
    harness = subprocess.Popen(
        [sys.executable, "-m", "sockspec", "run", "--json", str(json_path),
         "--targets", str(targets), "--target", "stopper", "--transport", "tcp", "client-basic"],
        cwd=PROJECT, env={**os.environ, "PYTHON": sys.executable},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for(lambda: _state(harness.pid) == "T" or harness.poll() is not None, 60)
        assert harness.poll() is None, harness.communicate()[1][-2000:]
        # The client gives up after its 1 s limit and stays a zombie of the stopped
        # harness: only then is the harness continued. No race: the stop outlasts it.
        assert _wait_for(lambda: any(_state(c) == "Z" for c in _children(harness.pid)), 30)
        os.kill(harness.pid, signal.SIGCONT)
        _, stderr = harness.communicate(timeout=RUN_LIMIT_S)
    finally:
        if harness.poll() is None:
            os.killpg(harness.pid, signal.SIGCONT)
            os.killpg(harness.pid, signal.SIGKILL)
            harness.wait()
    results = _results(json_path)
    assert results, stderr[-2000:]
    (record,) = results
    assert record["outcome"] == "error", (record["outcome"], record["evidence"])
    assert "the harness was suspended for" in record["evidence"], record["evidence"]
    assert "timing verdict is void" in record["evidence"]
    assert harness.returncode == 1
