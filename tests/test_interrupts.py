"""SIGINT, SIGTERM and SIGHUP at chosen moments of a run: never a false pass, results
written, the signal's exit status, nothing left running.

Each moment is made certain, not raced: ``SOCKSPEC_PAUSE_AT`` makes the process
running the chosen item stop itself (SIGSTOP) a set time into that item's call
phase (or at its end, if that comes first). While it is stopped, the test notes
what the run holds (its processes, their workdirs, listeners and namespaces),
sends the signal, to the whole process group or to the top process only, waits
until the signal is pending in the stopped process, and resumes it.

The oracle for "finished" is the harness's progress file (``SOCKSPEC_PROGRESS_FILE``):
"called <nodeid>" is written only when a scenario's call phase returned, so an
item without it must never be recorded as passed. SIGKILL of the harness (what
is left to the watchdog) is tested in test_process_lifetime.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sockspec_runner import PROJECT

pytestmark = pytest.mark.selftest

REACH_MOMENT_S = 180.0   # generous bounds that only catch hangs
PENDING_S = 20.0
FINISH_S = 120.0
GONE_WITHIN_S = 30.0
# Exec the harness with SIGINT and SIGHUP at their defaults, whatever the test runner
# inherited (a shell's background job ignores SIGINT, nohup ignores SIGHUP, and the
# harness respects an ignored signal).
EXEC_WITH_DEFAULT_SIGNALS = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                             "signal.signal(signal.SIGHUP, signal.SIG_DFL); "
                             "os.execv(sys.argv[1], sys.argv[1:])")
OWNED = re.compile(r"^sockspec-(\d+)-")


@dataclass(frozen=True)
class Moment:
    """Pause the item whose node id contains ``item`` ``after`` s into its call phase."""

    item: str
    after: float
    selectors: tuple[str, ...]
    workers: int = 0

    @property
    def pause_at(self) -> str:
        return f"{self.item}@{self.after:g}"


SENDFILE = "test_http_sendfile_over_2gib[reference-http-tcp]"
CLIENT_BODY = "test_client_http_body_over_2gib[reference-http-client-tcp]"
CONCURRENT = "test_concurrent_connections[reference-echo-tcp]"
WIRE_EVERY_BYTE = "test_wire_echo_every_byte_a_segment[reference-echo-tcp]"
WIRE_REQUEST_FIN = "test_wire_http_request_and_fin_in_one_segment[reference-http-tcp]"
WIRE_BACKLOG = "test_wire_backlog_syn_by_syn[reference-echo-tcp]"
WIRE_RESET = "test_wire_reset_in_the_middle_of_a_response[reference-http-tcp]"

MOMENTS = {
    "sendfile-2gib-start": Moment(SENDFILE, 0, ("echo_basic", "http_sendfile_over_2gib")),
    "sendfile-2gib-mid": Moment(SENDFILE, 0.5, ("http_sendfile_over_2gib", "basic"), workers=2),
    "client-body-2gib": Moment(CLIENT_BODY, 1.0, ("client_http_body_over_2gib", "client-basic")),
    "concurrent": Moment(CONCURRENT, 0.1, ("concurrent_connections", "echo_basic"), workers=2),
    "wire-every-byte": Moment(WIRE_EVERY_BYTE, 0.1, ("wire_echo_every_byte_a_segment",
                                                     "echo_basic")),
    "wire-request-fin": Moment(WIRE_REQUEST_FIN, 0.05, ("wire_http_request_and_fin_in_one_segment",
                                                        "http_basic"), workers=2),
    "wire-backlog": Moment(WIRE_BACKLOG, 0.1, ("wire_backlog_syn_by_syn",)),
}
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}
# Each moment with each signal; alternately to the process group (a terminal's
# Ctrl-C, `timeout`, a closed ssh session) and to the top process alone (kill PID).
CASES = [
    pytest.param(moment, name, (i + j) % 2 == 0, id=f"{key}-{name}-{'group' if (i + j) % 2 == 0 else 'top'}")
    for i, (key, moment) in enumerate(MOMENTS.items())
    for j, name in enumerate(SIGNALS)
]


@dataclass
class Snapshot:
    """What the run held while it was stopped at the moment."""

    pids: set[int] = field(default_factory=set)
    workdirs: set[str] = field(default_factory=set)
    listeners: set[tuple[str, int]] = field(default_factory=set)   # (table, port)
    namespaces: set[int] = field(default_factory=set)              # net namespace inodes


def proc_field(pid: int, name: str) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[3]) if fields[0] not in ("Z", "X") else None  # field 6: session


def processes_of(session: int, marker: str) -> set[int]:
    """Live processes of the run: in its session, or carrying its environment marker."""
    found = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        pid = int(name)
        if session_of(pid) == session:
            found.add(pid)
            continue
        try:
            if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes() and \
                    session_of(pid) is not None:
                found.add(pid)
        except OSError:
            pass
    return found


def listening_inodes() -> dict[int, tuple[str, int]]:
    found = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":  # TCP_LISTEN
                found[int(parts[9])] = (table, int(parts[1].rsplit(":", 1)[1], 16))
    return found


def listening_ports() -> set[tuple[str, int]]:
    return set(listening_inodes().values())


def snapshot(session: int, marker: str) -> Snapshot:
    snap = Snapshot(pids=processes_of(session, marker))
    listeners = listening_inodes()
    own_netns = os.stat("/proc/self/ns/net").st_ino
    for pid in snap.pids:
        try:
            netns = os.stat(f"/proc/{pid}/ns/net").st_ino
            links = [os.readlink(f"/proc/{pid}/cwd")]
            for fd in os.listdir(f"/proc/{pid}/fd"):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if netns != own_netns:
            snap.namespaces.add(netns)
        for link in links:
            if link.startswith("/tmp/sockspec-"):
                snap.workdirs.add("/".join(link.split("/")[:3]))
            inode = re.fullmatch(r"socket:\[(\d+)\]", link)
            if inode and int(inode.group(1)) in listeners and netns == own_netns:
                snap.listeners.add(listeners[int(inode.group(1))])
    return snap


def owned_leftovers(pids: set[int]) -> list[str]:
    """Workdirs and namespaces named for one of the run's processes (sockspec-<pid>-...)."""
    found = []
    for directory in ("/tmp", "/run/netns"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            match = OWNED.match(name)
            if match and int(match.group(1)) in pids:
                found.append(os.path.join(directory, name))
    return found


def namespace_exists(inode: int) -> bool:
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{name}/ns/net").st_ino == inode:
                return True
        except OSError:
            pass
    try:
        mounts = os.listdir("/run/netns")
    except OSError:
        mounts = []
    for name in mounts:
        try:
            if os.stat(f"/run/netns/{name}").st_ino == inode:
                return True
        except OSError:
            pass
    return False


def wait_for(condition, timeout: float, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


def pending(pid: int, signum: int) -> bool:
    bit = 1 << (signum - 1)
    return any(int(proc_field(pid, name) or "0", 16) & bit for name in ("SigPnd", "ShdPnd"))


def progress_lines(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if " " in line]


class Run:
    """One `sockspec run` in its own session, watched through its progress file."""

    def __init__(self, tmp: Path, moment: Moment) -> None:
        self.tmp = tmp
        self.marker = f"sockspec-interrupt-test-{uuid.uuid4().hex}"
        self.progress = tmp / "progress"
        self.json, self.html = tmp / "results.json", tmp / "report.html"
        env = dict(os.environ, SOCKSPEC_PROGRESS_FILE=str(self.progress),
                   SOCKSPEC_PAUSE_AT=moment.pause_at, SOCKSPEC_INTERRUPT_TEST=self.marker)
        workers = ["-n", str(moment.workers)] if moment.workers else []
        self.out = open(tmp / "output", "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", EXEC_WITH_DEFAULT_SIGNALS, sys.executable, "-m", "sockspec",
             "run", "--json", str(self.json), "--html", str(self.html), "--transport", "tcp",
             *workers, *moment.selectors],
            cwd=PROJECT, env=env, stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.session = self.proc.pid

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read()[-4000:]

    def paused_pid(self) -> int | None:
        for event, rest in progress_lines(self.progress):
            if event == "paused":
                return int(rest.split(" ", 1)[0])
        return None

    def lines(self, event: str) -> set[str]:
        return {rest for kind, rest in progress_lines(self.progress) if kind == event}

    def stop(self) -> None:
        """Whatever happened, leave nothing behind (by pid, only what this run started)."""
        for pid in processes_of(self.session, self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=FINISH_S)
        self.out.close()


def remove_owned(pids: set[int]) -> None:
    for path in owned_leftovers(pids):
        if path.startswith("/run/netns/"):
            subprocess.run(["ip", "netns", "del", os.path.basename(path)], check=False,
                           capture_output=True, timeout=10)
        else:
            shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("moment, name, to_group", CASES)
def test_a_signal_at_this_moment_keeps_results_and_leaves_nothing(tmp_path, moment, name,
                                                                   to_group):
    signum = SIGNALS[name]
    run = Run(tmp_path, moment)
    snap = Snapshot()
    try:
        assert wait_for(lambda: run.paused_pid() is not None or run.proc.poll() is not None,
                        REACH_MOMENT_S, poll=0.05), "the moment was never reached"
        paused = run.paused_pid()
        assert paused is not None, f"the run ended before the moment:\n{run.output()}"
        assert wait_for(lambda: proc_field(paused, "State").startswith("T"), PENDING_S)
        snap = snapshot(run.session, run.marker)
        if to_group:
            os.killpg(run.session, signum)
        else:
            os.kill(run.session, signum)
        # With workers, a signal to the top process reaches the paused worker only
        # because the harness passes it on: wait for that, then let it go on.
        assert wait_for(lambda: pending(paused, signum), PENDING_S), \
            f"{name} never reached the paused process {paused}"
        os.kill(paused, signal.SIGCONT)
        status = run.proc.wait(timeout=FINISH_S)
        output = run.output()

        assert status == 128 + signum, output
        assert run.json.exists() and run.html.exists(), output
        document = json.loads(run.json.read_text())
        assert document["run"]["status"] == "interrupted"
        assert document["run"]["signal"] == name
        outcomes = {r["nodeid"]: r["outcome"] for r in document["results"]}
        (stopped,) = [n for n in outcomes if moment.item in n]
        assert outcomes[stopped] == "interrupted", document["results"]
        finished = run.lines("called")
        false_passes = [n for n, o in outcomes.items() if o == "passed" and n not in finished]
        assert not false_passes, f"passed without finishing: {false_passes}"
        started = run.lines("start")
        never = {r["nodeid"] for r in document["not_run"]}
        assert not never & set(outcomes) and not never & started
        assert document["summary"]["total"] == len(outcomes)
        banner = re.search(r'<div class="v-title">([^<]*)</div>', run.html.read_text()).group(1)
        assert banner == "INTERRUPTED"

        # Nothing the run started is left, after a bounded time.
        def leftovers() -> list[str]:
            left = [f"process {pid}" for pid in processes_of(run.session, run.marker)]
            left += owned_leftovers(snap.pids)
            left += [d for d in snap.workdirs if os.path.exists(d)]
            left += [f"listener {t}:{p}" for t, p in snap.listeners & listening_ports()]
            left += [f"net namespace {i}" for i in snap.namespaces if namespace_exists(i)]
            return left

        assert wait_for(lambda: not leftovers(), GONE_WITHIN_S, poll=0.2), leftovers()
        assert snap.pids, "the snapshot saw none of the run's processes"
    finally:
        run.stop()
        remove_owned(snap.pids)


def test_a_worker_killed_mid_item_makes_that_item_an_error_not_a_pass(tmp_path):
    """kill -9 of the xdist worker running an item: that item is an error with the
    crash; xdist starts another worker and the rest of the run goes on."""
    moment = Moment("test_echo_basic[reference-echo-tcp]", 0,
                    ("echo_basic", "http_basic", "concurrent_connections"), workers=2)
    run = Run(tmp_path, moment)
    snap = Snapshot()
    try:
        assert wait_for(lambda: run.paused_pid() is not None or run.proc.poll() is not None,
                        REACH_MOMENT_S, poll=0.05), "the moment was never reached"
        paused = run.paused_pid()
        assert paused is not None and paused != run.session, run.output()
        assert wait_for(lambda: proc_field(paused, "State").startswith("T"), PENDING_S)
        snap = snapshot(run.session, run.marker)
        os.kill(paused, signal.SIGKILL)
        status = run.proc.wait(timeout=FINISH_S)
        output = run.output()

        assert status == 1, output
        document = json.loads(run.json.read_text())
        outcomes = {r["scenario"]: r for r in document["results"]}
        crashed = outcomes["echo_basic"]
        assert crashed["outcome"] == "error", crashed
        assert "crashed while running" in crashed["evidence"]
        assert outcomes["http_basic"]["outcome"] == "passed"
        assert outcomes["concurrent_connections"]["outcome"] == "passed"
        assert document["summary"]["passed"] == 2 and document["summary"]["error"] == 1
        banner = re.search(r'<div class="v-title">([^<]*)</div>', run.html.read_text()).group(1)
        assert banner == "FAILED"
    finally:
        # The killed worker's servers are left to the watchdog (test_process_lifetime.py);
        # whatever this run left is removed here.
        run.stop()
        remove_owned(snap.pids)


@pytest.mark.parametrize("key", ["sendfile-2gib-mid", "wire-every-byte"])
def test_more_signals_while_it_stops_do_not_cost_the_results(tmp_path, key):
    """Ctrl-C, then SIGTERM and another Ctrl-C while the run is stopping: the results
    of what finished are still written, and the first signal decides the exit status."""
    moment = MOMENTS[key]
    run = Run(tmp_path, moment)
    snap = Snapshot()
    try:
        assert wait_for(lambda: run.paused_pid() is not None or run.proc.poll() is not None,
                        REACH_MOMENT_S, poll=0.05), "the moment was never reached"
        paused = run.paused_pid()
        assert paused is not None, run.output()
        assert wait_for(lambda: proc_field(paused, "State").startswith("T"), PENDING_S)
        snap = snapshot(run.session, run.marker)
        os.killpg(run.session, signal.SIGINT)
        os.killpg(run.session, signal.SIGTERM)  # both pending in the stopped process
        assert wait_for(lambda: pending(paused, signal.SIGTERM), PENDING_S)
        os.kill(paused, signal.SIGCONT)
        os.killpg(run.session, signal.SIGINT)  # a second Ctrl-C while it shuts down
        status = run.proc.wait(timeout=FINISH_S)
        output = run.output()
        assert status == 130, output
        document = json.loads(run.json.read_text())
        assert (document["run"]["status"], document["run"]["signal"]) == ("interrupted", "SIGINT")
        assert run.html.exists()
        finished = run.lines("called")
        assert not [r for r in document["results"]
                    if r["outcome"] == "passed" and r["nodeid"] not in finished]
        assert wait_for(lambda: not processes_of(run.session, run.marker), GONE_WITHIN_S)
    finally:
        run.stop()
        remove_owned(snap.pids)
