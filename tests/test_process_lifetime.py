"""Programs under test never outlive the harness; escapees are stopped and reported;
what a killed harness left is cleaned (sockspec.process.lifeline, sockspec.cleanup).

Every process a test starts is bounded (fixture lifetimes, timeouts) and found again
by a marker only it carries, so nothing outside these tests is ever looked at or
signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sockspec_runner import PROJECT, run_sockspec

from sockspec.process import LaunchSpec, ServerProcess
from sockspec.process.tree import read_stat
from sockspec.transport import TcpAddress
from sockspec.under_test.ports import PortAllocator

HOSTILE = PROJECT / "fixtures" / "hostile"
GONE_WITHIN_S = 15.0          # generous: the watchdog acts within milliseconds
IP_TIMEOUT_S = 10.0


def marked_processes(mark: str) -> dict[int, int]:
    """pid -> starttime of live processes whose environment holds ``mark``."""
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if mark.encode() not in f.read():
                    continue
        except OSError:
            continue
        info = read_stat(int(name))
        if info is not None and info.live:
            found[info.pid] = info.starttime
    return found


def reap_ours() -> None:
    """Zombies reparented to this (subreaper) process by a killed driver: reap them."""
    for name in filter(str.isdigit, os.listdir("/proc")):
        info = read_stat(int(name))
        if info is not None and info.state == "Z" and info.ppid == os.getpid():
            try:
                os.waitpid(info.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def wait_until(condition, timeout: float = GONE_WITHIN_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_ours()
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def still_running(identities: dict[int, int]) -> list[int]:
    running = []
    for pid, start in identities.items():
        info = read_stat(pid)
        if info is not None and info.starttime == start and info.live:
            running.append(pid)
    return running


def kill_marked(mark: str) -> None:
    """After a failed test: stop what it started (only processes carrying its mark)."""
    for pid in marked_processes(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    wait_until(lambda: not marked_processes(mark), 5.0)


@pytest.fixture
def mark() -> Iterator[str]:
    value = f"SOCKSPEC_LIFETIME_TEST={uuid.uuid4().hex}"
    yield value
    kill_marked(value)


def marked_env(mark: str) -> dict[str, str]:
    name, _, value = mark.partition("=")
    return {**os.environ, name: value}


# -- SIGKILL of the harness ----------------------------------------------------------------

DRIVER = """
import sys, time
from pathlib import Path
from sockspec.under_test.ports import PortAllocator, make_socket_dir
from sockspec.process import LaunchSpec, ServerProcess
from sockspec.transport import TcpAddress

script, log_dir = sys.argv[1], Path(sys.argv[2])
port = PortAllocator().allocate()
address = TcpAddress("127.0.0.1", port)
workdir = Path(make_socket_dir())   # as the harness makes a server's workspace
(workdir / "sparse").write_bytes(b"x")
server = ServerProcess.start(LaunchSpec(argv=[sys.executable, script, "-p", str(port)],
                                        cwd=str(log_dir), address=address, name="victim"),
                             log_dir=log_dir)
namespace = "-"
try:
    from sockspec.packets.lab import unavailable_reason, wire_lab
    if unavailable_reason() is None:
        lab = wire_lab().__enter__()   # left open: the harness is killed inside it
        namespace = lab.namespace
except ImportError:
    pass
print(workdir, namespace, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("script", ["ignores_sigterm", "orphan_grandchild"])
def test_programs_under_test_die_soon_after_the_harness_is_sigkilled(
        script: str, mark: str, tmp_path: Path) -> None:
    """ignores_sigterm: the server the harness forked (parent-death signal);
    orphan_grandchild: a daemon that left the group and its parent (the watchdog),
    which also deletes the dead harness's workspace and network namespace."""
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(HOSTILE / f"{script}.py"), str(tmp_path)],
        cwd=PROJECT, env=marked_env(mark), stdout=subprocess.PIPE, text=True)
    try:
        workdir_name, namespace = driver.stdout.readline().split()
        workdir = Path(workdir_name)
        servers = {pid: start for pid, start in marked_processes(mark).items()
                   if pid != driver.pid and "fixtures/hostile" in
                   Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")}
        assert servers, "the driver's server is not running"
    finally:
        driver.kill()
        driver.wait()
    assert wait_until(lambda: not still_running(servers)), (
        f"servers still running {GONE_WITHIN_S:g} s after the harness was SIGKILLed: "
        f"{still_running(servers)}")
    # The watchdog also removes the dead harness's workspace, then ends itself.
    assert workdir.name.startswith(f"sockspec-{driver.pid}-"), workdir
    assert wait_until(lambda: not workdir.exists()), f"{workdir} left behind"
    if namespace != "-":
        assert namespace.startswith(f"sockspec-{driver.pid}-"), namespace
        assert wait_until(lambda: not os.path.exists(f"/run/netns/{namespace}")), namespace
    assert wait_until(lambda: not marked_processes(mark)), marked_processes(mark)


# -- escaping programs ---------------------------------------------------------------------

def start_server(argv: list[str], port: int, log_dir: Path) -> ServerProcess:
    return ServerProcess.start(
        LaunchSpec(argv=argv, cwd=str(PROJECT), address=TcpAddress("127.0.0.1", port),
                   name="escaper"), log_dir=log_dir, ready_timeout=20)


def test_the_harness_own_fork_before_exec_is_not_taken_for_an_escapee(tmp_path: Path) -> None:
    """Another program being started (forked, setsid() done, exec() not yet) holds copies
    of every descriptor of the harness, a server's output pipes too: not the server's."""
    port = PortAllocator().allocate()
    server = start_server([sys.executable, str(HOSTILE / "slow_start.py"), "-p", str(port)],
                          port, tmp_path)
    child = os.fork()
    if child == 0:  # what preexec_fn time looks like: new session, no exec yet
        try:
            os.setsid()
            time.sleep(5)
        finally:
            os._exit(0)
    try:
        time.sleep(0.2)  # the child has left the harness's session
        report = server.stop()
        assert report.escaped_pids == [] and report.leftover_pids == [], report
        assert os.waitpid(child, os.WNOHANG) == (0, 0), "the harness's fork was signalled"
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_daemon_that_drops_its_environment_is_found_stopped_and_reported(
        mark: str, tmp_path: Path) -> None:
    """`setsid -f env -i SERVER`: exits 0 at once; the daemon has no token, no parent."""
    port = PortAllocator().allocate()
    name, _, value = mark.partition("=")
    argv = ["setsid", "-f", "env", "-i", f"{name}={value}", sys.executable,
            str(HOSTILE / "slow_start.py"), "-p", str(port)]
    server = start_server(argv, port, tmp_path)
    daemons = {pid: start for pid, start in marked_processes(mark).items()}
    assert len(daemons) == 1 and server.pid not in daemons
    assert sorted(daemons) == server.group_pids()  # attributed: it holds our output pipes
    report = server.stop()
    assert report.escaped_pids == sorted(daemons)
    assert report.problems() == [] and report.leftover_pids == []
    assert "outside its process group" in " ".join(report.notes())
    assert still_running(daemons) == []


def test_every_link_of_a_hopping_fork_chain_is_stopped_and_reported(
        mark: str, tmp_path: Path) -> None:
    port = PortAllocator().allocate()
    server = start_server([sys.executable, str(HOSTILE / "_hopping_child.py"), "-p", str(port),
                           "--profile", "echo"], port, tmp_path)
    time.sleep(0.2)  # the chain hops about ten times, always outside the server's group
    report = server.stop()
    assert report.leftover_pids == [] and report.escaped_pids, report
    assert "outside its process group" in " ".join(report.notes())
    assert not [pid for pid in server.group_pids()]
    chain = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
             if str(HOSTILE / "_hopping_child.py") in _cmdline(pid) and f"{port}" in _cmdline(pid)]
    assert chain == [], f"links of the chain still running: {chain}"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.selftest
def test_a_run_reports_the_escapees_of_its_shared_server_and_counts_them(mark: str) -> None:
    """The shared server's stop report reaches the results; the last line counts."""
    command = (f"{sys.executable} {HOSTILE / '_hopping_child.py'} --profile echo "
               f"-h {{host}} -p {{port}}")
    outcome = run_sockspec("--server-cmd", command, "--profile", "echo", "--transport", "tcp",
                           "basic", timeout=300)
    assert outcome.document is not None, outcome.stderr[-2000:]
    evidence = "\n".join(r["evidence"] for r in outcome.document["results"])
    assert "outside its process group" in evidence, evidence
    reporting = [r for r in outcome.document["results"]
                 if "outside its process group" in r["evidence"]]
    assert reporting and all(r["outcome"] == "error" for r in reporting), reporting
    assert outcome.status == 1
    last = outcome.stderr.strip().splitlines()[-1]
    assert "left by programs under test" in last and "stopped" in last, outcome.stderr[-2000:]


# -- sockspec clean --------------------------------------------------------------------------

def dead_pid() -> int:
    """A pid that ran and is gone (pids are not reused this quickly)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def netns_available() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if subprocess.run(["sh", "-c", "command -v ip"], capture_output=True).returncode != 0:
        return "no `ip` command"
    return None


def test_clean_removes_what_dead_runs_left_and_nothing_else(tmp_path: Path) -> None:
    dead = dead_pid()
    sleeper = subprocess.Popen(["sleep", "60"])
    made: list[str] = []
    try:
        stale = tempfile.mkdtemp(prefix=f"sockspec-{dead}-", dir="/tmp")
        Path(stale, "big").write_bytes(b"\0" * 10)
        os.mkfifo(os.path.join(stale, "s.sock"))
        live = tempfile.mkdtemp(prefix=f"sockspec-{sleeper.pid}-", dir="/tmp")
        foreign = tempfile.mkdtemp(prefix="sockspec-notapid-", dir="/tmp")
        target = tmp_path / "precious"
        target.mkdir()
        (target / "keep").write_text("keep")
        link = f"/tmp/sockspec-{dead}-link{uuid.uuid4().hex[:6]}"
        os.symlink(target, link)
        made += [stale, live, foreign, link]
        namespace = None
        if netns_available() is None:
            namespace = f"sockspec-{dead}-t{uuid.uuid4().hex[:6]}"
            subprocess.run(["ip", "netns", "add", namespace], check=True, timeout=IP_TIMEOUT_S)
        result = subprocess.run([sys.executable, "-m", "sockspec", "clean"], cwd=PROJECT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"removed directory {stale}" in result.stdout
        assert not os.path.exists(stale)
        assert os.path.isdir(live) and os.path.isdir(foreign)  # a live owner; not ours
        assert os.path.islink(link) and (target / "keep").read_text() == "keep"
        if namespace is not None:
            assert f"removed network namespace {namespace}" in result.stdout
            assert not os.path.exists(f"/run/netns/{namespace}")
        for path in (live, foreign, link):
            assert path not in result.stdout
    finally:
        sleeper.kill()
        sleeper.wait()
        for path in made:
            if os.path.islink(path):
                os.unlink(path)
            elif os.path.isdir(path):
                subprocess.run(["rm", "-rf", "--", path], check=False)
        if namespace is not None and os.path.exists(f"/run/netns/{namespace}"):
            subprocess.run(["ip", "netns", "del", namespace], check=False, timeout=IP_TIMEOUT_S)


# -- sockspec run SIGKILLed in the middle ------------------------------------------------------

def listening_inodes() -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found.add(fields[9])
    return found


def listening_pids(pids) -> list[int]:
    listeners = listening_inodes()
    found = []
    for pid in pids:
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if any(link[len("socket:["):-1] in listeners for link in links
               if link.startswith("socket:[")):
            found.append(pid)
    return found


@pytest.mark.selftest
def test_sockspec_run_sigkilled_mid_run_leaves_no_server_listening(mark: str) -> None:
    """`kill -9 -PGID` of `sockspec run -n 2`: controller and workers die at once."""
    run = subprocess.Popen(
        [sys.executable, "-m", "sockspec", "run", "--transport", "tcp", "--target",
         "reference-echo", "-n", "2"],
        cwd=PROJECT, env=marked_env(mark), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Mid-run: once a server of this run listens (found by the mark it inherited).
        assert wait_until(lambda: listening_pids(set(marked_processes(mark)) - {run.pid}), 120)
        harness_pids = {str(pid) for pid in marked_processes(mark)}  # controller, workers
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the controller and its xdist workers at once
        run.wait()
    assert wait_until(lambda: not listening_pids(marked_processes(mark))), (
        f"still listening {GONE_WITHIN_S:g} s after the run was SIGKILLed: "
        f"{listening_pids(marked_processes(mark))}")
    # Nothing of the run is left at all: servers, workers, watchdogs, workspaces.
    assert wait_until(lambda: not marked_processes(mark)), marked_processes(mark)
    assert wait_until(lambda: not [path for path in os.listdir("/tmp")
                                   if path.split("-")[:2][-1] in harness_pids
                                   and path.startswith("sockspec-")])


def test_escaped_and_surviving_processes_are_errors_with_evidence() -> None:
    from sockspec.process import StopReport
    from sockspec.under_test.server import stop_findings

    escaped = StopReport(exit_status=-15, needed_sigkill=False, leftover_pids=[],
                         address_still_held=False, name="s", escaped_pids=[41, 42])
    lines, error = stop_findings([escaped])
    assert lines == [
        "s left 2 processes outside its process group (pid 41, 42); the harness stopped them"]
    assert error == lines[0]
    stuck = StopReport(exit_status=-9, needed_sigkill=True, leftover_pids=[43],
                       address_still_held=False, name="s", grace=3.0)
    lines, error = stop_findings([escaped, stuck])
    assert error == f"{lines[0]}; s left processes running after stop: pid 43"
    assert len(lines) == 3
