"""--isolate: each server target in a network namespace of its own, only loopback (issue 20, 3).

The end-to-end test runs fixtures/servers/phones_home.py, a server that tries
to reach 192.0.2.1 (TEST-NET-1) on every connection, but only after checking
that its namespace holds nothing but ``lo`` and no route: outside such a
namespace it never tries, so nothing can leave the machine even if
--isolate were broken.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from sockspec_runner import PROJECT, run_sockspec

from sockspec import isolate
from sockspec.iproute import NAMED_NETNS_DIR

pytestmark = pytest.mark.skipif(isolate.unavailable_reason() is not None,
                                reason=str(isolate.unavailable_reason()))

PHONES_HOME = PROJECT / "fixtures" / "servers" / "phones_home.py"
ISOLATE_NAME = re.compile(r"^sockspec-\d+-iso\d+$")


def _isolate_namespaces() -> set[str]:
    try:
        return {name for name in os.listdir(NAMED_NETNS_DIR) if ISOLATE_NAME.match(name)}
    except FileNotFoundError:
        return set()


def _thread_netns() -> tuple[int, int]:
    info = os.stat("/proc/thread-self/ns/net")
    return info.st_dev, info.st_ino


def _interfaces_and_routes() -> tuple[list[str], int]:
    with open("/proc/thread-self/net/dev") as f:
        interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    with open("/proc/thread-self/net/route") as f:
        return interfaces, len(f.readlines()[1:])


def _phone_home_run(tmp_path, monkeypatch, *extra: str):
    report = tmp_path / "phoned.txt"
    command = f"{sys.executable} {PHONES_HOME} --profile echo -h {{host}} -p {{port}}"
    monkeypatch.setenv("SOCKSPEC_PHONE_HOME_REPORT", str(report))  # the server appends here
    outcome = run_sockspec("--server-cmd", command, "--profile", "echo",
                           "--transport", "tcp", "--transport", "tcp6", *extra, "echo_basic")
    lines = report.read_text().splitlines() if report.exists() else []
    return outcome, lines


def test_a_server_that_phones_home_cannot_reach_out_under_isolate(tmp_path, monkeypatch):
    before = _isolate_namespaces()
    outcome, lines = _phone_home_run(tmp_path, monkeypatch, "--isolate")
    assert outcome.status == 0, outcome.stdout[-2000:] + outcome.stderr[-2000:]
    assert lines, "the server reported no connection"
    for line in lines:
        # Its namespace: lo alone, no route; the connect failed at once, before any packet.
        assert line.startswith("isolated: interfaces lo; routes none; "
                               "connect 192.0.2.1:80: ENETUNREACH in "), line
    (target,) = outcome.document["targets"]
    assert target["isolated"] is True
    assert _isolate_namespaces() <= before, "a namespace of --isolate was left behind"


def test_without_isolate_the_guard_stops_the_server_from_trying(tmp_path, monkeypatch):
    outcome, lines = _phone_home_run(tmp_path, monkeypatch)
    assert outcome.status == 0, outcome.stdout[-2000:]
    assert lines and all(line.startswith("not isolated (") and line.endswith("did not try")
                         for line in lines), lines
    (target,) = outcome.document["targets"]
    assert target["isolated"] is False


def test_isolate_without_ip_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no `ip` anywhere on PATH
    proc = subprocess.run([sys.executable, "-m", "sockspec", "run", "--isolate", "basic"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("sockspec: --isolate needs the `ip` command "
                                   "(Debian package iproute2)")


def test_each_target_gets_its_own_namespace_with_only_loopback():
    """Two targets: two namespaces; the same port binds in both; nothing else is reachable."""
    isolation = isolate.Isolation()
    outside = _thread_netns()
    try:
        with isolation.entered("a") as first, \
                socket.create_server(("127.0.0.1", 0)) as listener_a:
            port = listener_a.getsockname()[1]
            assert _thread_netns() != outside
            # The guard before any connect outside: only lo, no route, in this thread.
            assert _interfaces_and_routes() == (["lo"], 0)
            with socket.socket() as probe:
                with pytest.raises(OSError) as raised:
                    probe.connect(("192.0.2.1", 80))  # inside: no route, nothing sent
            assert raised.value.errno == 101  # ENETUNREACH
            with isolation.entered("b") as second, \
                    socket.create_server(("127.0.0.1", port)) as listener_b:
                assert second != first      # a port taken in one is free in the other
                assert listener_b.getsockname()[1] == port
        assert _thread_netns() == outside  # back where it started
        assert set(isolation.namespaces()) == {"a", "b"}
        names = set(isolation.namespaces().values())
        assert names <= _isolate_namespaces()
    finally:
        assert isolation.close() == []
    assert not names & _isolate_namespaces()
