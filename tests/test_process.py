"""sockspec.process against the hostile fixture servers: every outcome is clear,
bounded in time, and leaves no process, socket file or oversized log behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sockspec import process
from sockspec.errors import AddressError, ConnectError, ServerStartError
from sockspec.process import (
    LOG_FILE_CAP,
    LaunchSpec,
    ProcInfo,
    ServerProcess,
    StopReport,
    attribute_processes,
    lifeline,
    read_process_table,
    stop_all,
    wait_until_accepting,
)
from sockspec.transport import (
    Address,
    StreamEnd,
    TcpAddress,
    UnixAddress,
    connect,
    half_close,
    read_until_end,
    send_all,
)
from sockspec.under_test.ports import PortAllocator

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "fixtures" / "hostile"
IO_TIMEOUT = 10.0        # generous: "did not hang" bounds only, the machine is noisy
SLACK = 6.0  # allowed overrun of start()/stop() bounds: a hang shows as far more, while
             # two test suites on 2 CPUs have made a 1.5 s bound take 5.1 s
LOG_NOTE_MAX = 200       # the truncation note appended to a capped log file


# -- helpers --------------------------------------------------------------------------


PORTS = PortAllocator()  # below the ephemeral range: clients' source ports never land there


def free_tcp_port() -> int:
    """A port on 127.0.0.1 that was free just now."""
    for _ in range(50):
        port = PORTS.allocate()
        if _bindable(port):
            return port
    raise RuntimeError("no free port found")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def hostile(behaviour: str, address: Address, *, profile: str = "echo",
            root: str = ".") -> LaunchSpec:
    where = (["-u", address.path] if isinstance(address, UnixAddress)
             else ["-p", str(address.port), "-h", address.host])
    argv = [sys.executable, str(HOSTILE / f"{behaviour}.py"), "--profile", profile, *where,
            "-r", root]
    return LaunchSpec(argv=argv, cwd=str(REPO), address=address, name=behaviour)


def tcp() -> TcpAddress:
    return TcpAddress("127.0.0.1", free_tcp_port())


def echo(address: Address, payload: bytes = b"hello sockspec\n") -> bytes:
    with connect(address, IO_TIMEOUT) as sock:
        send_all(sock, payload)
        half_close(sock)
        data, end = read_until_end(sock, IO_TIMEOUT)
    assert end is StreamEnd.FIN
    return data


def identities(server: ServerProcess) -> set[tuple[int, int]]:
    table = read_process_table()
    return {table[pid].identity for pid in server.group_pids() if pid in table}


def assert_gone(seen: set[tuple[int, int]]) -> None:
    table = read_process_table()
    still = [pid for pid, start in seen if pid in table and table[pid].starttime == start]
    assert still == [], f"processes still present (even as zombies): {still}"


def wait_for(condition: Callable[[], bool], timeout: float = IO_TIMEOUT) -> bool:
    """Bounded wait for a condition that another process makes true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def descendants_of_harness() -> set[tuple[int, int]]:
    table = read_process_table()
    found: set[tuple[int, int]] = set()
    frontier = [os.getpid()]
    watchdog = lifeline.watchdog_pid()  # lives as long as this process, on purpose
    while frontier:
        parent = frontier.pop()
        for info in table.values():
            if info.ppid == parent and info.identity not in found and info.pid != watchdog:
                found.add(info.identity)
                frontier.append(info.pid)
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = descendants_of_harness()
    yield
    stop_all()  # a failed test must not leak its servers into the next one
    leaked = descendants_of_harness() - before
    assert leaked == set(), f"processes (or unreaped zombies) left behind: {leaked}"
    assert not list(process._LIVE_SERVERS)


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    logs = tmp_path / "logs"
    yield logs
    for log in logs.glob("*.log"):
        assert log.stat().st_size <= LOG_FILE_CAP + LOG_NOTE_MAX, f"{log} is not capped"


@pytest.fixture
def unix_dir() -> Iterator[str]:
    # pytest's tmp_path is too long for sun_path (108 bytes); keep socket paths short.
    path = tempfile.mkdtemp(prefix="ss-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(spec: LaunchSpec, log_dir: Path, **kwargs: float) -> ServerProcess:
    return ServerProcess.start(spec, log_dir=log_dir, **kwargs)


# -- start-up failures ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_another_process_listening_on_the_address_is_not_readiness(
        log_dir: Path, transport: str) -> None:
    """A colliding port (or path) answered by someone else must not make a server ready."""
    socket_dir = tempfile.mkdtemp(prefix="ss-")
    address = tcp() if transport == "tcp" else UnixAddress(os.path.join(socket_dir, "s"))
    try:
        with socket.socket(address.family, socket.SOCK_STREAM) as foreign:
            foreign.bind(address.sockaddr)
            foreign.listen(64)
            started = time.monotonic()
            with pytest.raises(ServerStartError, match="another process listens there"):
                start(hostile("never_listens", address), log_dir, ready_timeout=1.5)
            assert time.monotonic() - started < 1.5 + SLACK
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.mark.parametrize("status", [0, 1])
def test_a_server_gone_at_once_is_not_made_ready_by_someone_elses_listener(
        log_dir: Path, status: int) -> None:
    """It exited (say with EADDRINUSE) and a rival holds the port: the probe's connect
    succeeds, but nothing of ours listens, so this is a failed start."""
    address = tcp()
    with socket.socket(address.family, socket.SOCK_STREAM) as foreign:
        foreign.bind(address.sockaddr)
        foreign.listen(64)
        spec = LaunchSpec(argv=[sys.executable, "-c", f"import sys; sys.exit({status})"],
                          cwd=".", address=address, name="gone")
        with pytest.raises(ServerStartError):
            start(spec, log_dir, ready_timeout=3.0)


def test_exec_failure_is_one_clear_line(tmp_path: Path, log_dir: Path) -> None:
    spec = LaunchSpec(argv=["build/x"], cwd=str(tmp_path), address=tcp(), name="my_echo")
    with pytest.raises(ServerStartError) as caught:
        start(spec, log_dir)
    assert str(caught.value) == "my_echo: cannot start build/x: No such file or directory"


def test_missing_working_directory_is_named(tmp_path: Path, log_dir: Path) -> None:
    missing = str(tmp_path / "nowhere")
    spec = LaunchSpec(argv=[sys.executable], cwd=missing, address=tcp(), name="my_echo")
    with pytest.raises(ServerStartError, match="cannot change to directory .*nowhere"):
        start(spec, log_dir)


def test_never_listens_times_out_then_leaves_nothing(log_dir: Path) -> None:
    address = tcp()
    began = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        start(hostile("never_listens", address), log_dir, ready_timeout=2.0)
    elapsed = time.monotonic() - began
    assert str(caught.value) == f"never_listens did not accept on {address} within 2 s"
    assert 2.0 <= elapsed < 2.0 + SLACK


def test_exits_at_once_is_reported_at_once_with_status_and_stderr(log_dir: Path) -> None:
    address = tcp()
    began = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        start(hostile("exits_at_once", address), log_dir, ready_timeout=10.0)
    message = str(caught.value)
    assert time.monotonic() - began < 5.0, "must not wait out the ready timeout"
    assert message == (f"exits_at_once exited with status 3 before accepting on {address}; "
                       f"stderr: fatal: config missing")
    assert (log_dir / "exits_at_once.stderr.log").read_bytes() == b"fatal: config missing\n"


def test_death_by_signal_during_startup_names_the_signal(log_dir: Path) -> None:
    argv = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    spec = LaunchSpec(argv=argv, cwd=str(REPO), address=tcp(), name="suicide")
    with pytest.raises(ServerStartError, match=r"^suicide was killed by SIGKILL before accepting"):
        start(spec, log_dir)


def test_server_on_another_port_does_not_look_ready(log_dir: Path) -> None:
    address = tcp()
    # The next port held by another program, as a parallel test's server may hold
    # it: the fixture still shows its behaviour (on PORT+1 it exited, EADDRINUSE).
    with socket.socket() as neighbour:
        try:
            neighbour.bind(("127.0.0.1", address.port + 1))
            neighbour.listen(1)
        except OSError:
            pass  # held already
        with pytest.raises(ServerStartError, match="did not accept on"):
            start(hostile("wrong_port", address), log_dir, ready_timeout=2.0)
    # Control: the fixture really does listen and serve, on the port it names.
    spec = hostile("wrong_port", address)
    with subprocess.Popen(spec.argv, cwd=spec.cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            said = proc.stderr.readline()  # "" if it died first; its alarm bounds a hang
            moved = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+) instead\n", said)
            assert moved and int(moved.group(1)) != address.port, said
            assert echo(TcpAddress("127.0.0.1", int(moved.group(1)))) == b"hello sockspec\n"
        finally:
            proc.kill()
            proc.wait(timeout=10)


def test_server_on_another_unix_path_does_not_look_ready(log_dir: Path, unix_dir: str) -> None:
    address = UnixAddress(os.path.join(unix_dir, "s"))
    with pytest.raises(ServerStartError, match="did not accept on unix:"):
        start(hostile("wrong_port", address), log_dir, ready_timeout=2.0)


def test_slow_start_becomes_ready_after_its_delay(log_dir: Path) -> None:
    address = tcp()
    began = time.monotonic()
    with start(hostile("slow_start", address), log_dir, ready_timeout=10.0) as server:
        assert time.monotonic() - began >= 3.0  # it sleeps 3 s before it even binds
        assert echo(address) == b"hello sockspec\n"
    assert server.stop().problems() == []


# -- output floods ------------------------------------------------------------------------


def test_endless_stdout_is_capped_and_does_not_block(log_dir: Path) -> None:
    address = tcp()
    with start(hostile("floods_output", address), log_dir) as server:
        assert echo(address) == b"hello sockspec\n"
        assert wait_for(lambda: "bytes not kept" in server.stdout_tail(100))
        assert server.stdout_path.stat().st_size <= LOG_FILE_CAP
        assert echo(address, b"x" * 100_000) == b"x" * 100_000
        seen = identities(server)
    report = server.stop()
    assert report.problems() == []
    assert_gone(seen)
    assert "bytes not kept; log capped" in server.stdout_path.read_text()[-LOG_NOTE_MAX:]


def test_300_mb_before_listening_is_drained_and_counted(log_dir: Path) -> None:
    address = tcp()
    with start(hostile("floods_stdout_before_listen", address), log_dir,
               ready_timeout=60.0) as server:
        assert echo(address) == b"hello sockspec\n"
    assert server.stop().problems() == []
    tail = server.stdout_tail(100)
    flood = 300 * 1024 * 1024
    assert tail == f"[... {flood - 100} bytes not kept ...]\n" + "x" * 99 + "\n"
    assert server.stdout_path.stat().st_size <= LOG_FILE_CAP + LOG_NOTE_MAX


# -- escaping and stubborn servers ----------------------------------------------------------


def test_orphan_grandchild_is_found_and_stopped(log_dir: Path) -> None:
    address = tcp()
    with start(hostile("orphan_grandchild", address), log_dir) as server:
        assert echo(address) == b"hello sockspec\n"
        assert wait_for(lambda: server.exit_status() is not None)
        assert server.exit_status() == 0
        assert server.alive()
        escaped = [pid for pid in server.group_pids() if pid != server.pid]
        assert escaped and all(os.getsid(pid) != server.pgid for pid in escaped)
        seen = identities(server)
    report = server.stop()
    assert report.problems() == []
    assert report.exit_status == 0
    assert_gone(seen)
    assert _bindable(address.port)


def test_ignoring_sigterm_needs_sigkill_and_still_ends_in_time(log_dir: Path) -> None:
    with start(hostile("ignores_sigterm", tcp()), log_dir) as server:
        seen = identities(server)
        began = time.monotonic()
        report = server.stop(grace=1.0)
        elapsed = time.monotonic() - began
    assert 1.0 <= elapsed < 1.0 + SLACK
    assert report.needed_sigkill
    assert report.exit_status == -signal.SIGKILL
    assert report.leftover_pids == [] and not report.address_still_held
    assert any("SIGKILL" in problem for problem in report.problems())
    assert_gone(seen)


def _never_reads(address: Address, _root: Path) -> None:
    with connect(address, IO_TIMEOUT) as sock:
        send_all(sock, b"anyone there?")
        _, end = read_until_end(sock, 0.5)
    assert end is StreamEnd.TIMEOUT


def _resets(address: Address, _root: Path) -> None:
    # The RST may arrive before connect() has checked its result: then connect
    # itself reports it.
    try:
        with connect(address, IO_TIMEOUT) as sock:
            _, end = read_until_end(sock, IO_TIMEOUT)
    except ConnectError as exc:
        assert "ECONNRESET" in str(exc)
        return
    assert end is StreamEnd.RST


def _closed_listener(address: Address, _root: Path) -> None:
    # The readiness probe was the first client; the listener closes after it.
    def refused() -> bool:
        try:
            connect(address, IO_TIMEOUT).close()
        except ConnectError:
            return True
        return False
    assert wait_for(refused)


def _http_get(address: Address) -> bytes:
    with connect(address, IO_TIMEOUT) as sock:
        send_all(sock, b"GET /page HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, end = read_until_end(sock, IO_TIMEOUT)
    assert end in (StreamEnd.FIN, StreamEnd.RST)
    return data


def _garbage(address: Address, _root: Path) -> None:
    answer = _http_get(address)
    assert answer and not answer.startswith(b"HTTP/")


def _short_body(address: Address, root: Path) -> None:
    head, _, body = _http_get(address).partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head
    assert body == (root / "page").read_bytes()[:500]


@pytest.mark.parametrize(("behaviour", "profile", "observe"), [
    ("accepts_never_reads", "echo", _never_reads),
    ("resets_every_connection", "echo", _resets),
    ("closes_listener_after_first", "echo", _closed_listener),
    ("http_garbage", "http", _garbage),
    ("short_body", "http", _short_body),
])
def test_listening_misbehavers_start_and_stop_cleanly(
        behaviour: str, profile: str, observe: Callable[[Address, Path], None],
        log_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "page").write_bytes(bytes(range(250)) * 4)
    address = tcp()
    with start(hostile(behaviour, address, profile=profile, root=str(root)), log_dir) as server:
        observe(address, root)  # the fixture really has its defect
        assert server.alive()
        seen = identities(server)
    report = server.stop()
    assert report.problems() == [] and report.exit_status == -signal.SIGTERM
    assert_gone(seen)


# -- lifecycle and observation ----------------------------------------------------------------


def test_lifetime_watchdog_stops_a_server_on_its_own(log_dir: Path) -> None:
    server = start(hostile("accepts_never_reads", tcp()), log_dir, lifetime=1.0)
    seen = identities(server)
    assert wait_for(lambda: not server.alive(), timeout=1.0 + 3.0 + SLACK)
    report = server.stop()
    assert report.lifetime_exceeded
    assert any("watchdog" in problem for problem in report.problems())
    assert_gone(seen)


def test_stop_is_idempotent(log_dir: Path) -> None:
    server = start(hostile("accepts_never_reads", tcp()), log_dir)
    first = server.stop()
    began = time.monotonic()
    assert server.stop() is first
    assert time.monotonic() - began < 0.5
    assert not server.alive() and server.group_pids() == []


def test_group_pids_fd_count_and_rss(log_dir: Path) -> None:
    address = tcp()
    with start(hostile("accepts_never_reads", address), log_dir) as server:
        assert server.group_pids() == [server.pid]
        assert server.rss_bytes() > 1024 * 1024
        base = server.fd_count()
        assert base >= 4  # stdin, stdout, stderr, listener
        clients = [connect(address, IO_TIMEOUT) for _ in range(5)]
        try:
            assert wait_for(lambda: server.fd_count() >= base + 5)
        finally:
            for client in clients:
                client.close()
    assert server.fd_count() == 0


def test_pause_silences_even_escaped_processes_until_resume(log_dir: Path) -> None:
    address = tcp()
    with start(hostile("orphan_grandchild", address), log_dir) as server:
        assert echo(address) == b"hello sockspec\n"
        server.pause()
        with connect(address, IO_TIMEOUT) as sock:  # the kernel completes the handshake
            send_all(sock, b"ping")
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(16)
            server.resume()
            half_close(sock)
            data, end = read_until_end(sock, IO_TIMEOUT)
        assert (data, end) == (b"ping", StreamEnd.FIN)
    assert server.stop().problems() == []


def test_paused_server_still_stops_on_sigterm(log_dir: Path) -> None:
    with start(hostile("accepts_never_reads", tcp()), log_dir) as server:
        server.pause()
        report = server.stop(grace=2.0)
    assert not report.needed_sigkill and report.exit_status == -signal.SIGTERM


def test_kill_hard_then_restart_on_the_same_port(log_dir: Path) -> None:
    address = tcp()
    spec = hostile("ignores_sigterm", address)
    server = start(spec, log_dir)
    seen = identities(server)
    server.kill_hard()
    assert not server.alive() and server.exit_status() == -signal.SIGKILL
    assert_gone(seen)
    assert server.stop().problems() == []
    with start(spec, log_dir) as again:
        assert echo(address) == b"hello sockspec\n"
        again.kill_hard()
    assert (log_dir / "ignores_sigterm.2.stdout.log").exists()


@pytest.mark.parametrize("behaviour", ["orphan_grandchild", "accepts_never_reads"])
def test_unix_socket_file_is_removed_after_stop(behaviour: str, log_dir: Path,
                                                unix_dir: str) -> None:
    address = UnixAddress(os.path.join(unix_dir, "s"))
    with start(hostile(behaviour, address), log_dir) as server:
        if behaviour == "orphan_grandchild":
            assert echo(address) == b"hello sockspec\n"
        assert os.path.exists(address.path)
        seen = identities(server)
    report = server.stop()
    assert report.problems() == []
    assert not os.path.exists(address.path)
    assert_gone(seen)


def test_stop_all_stops_every_live_server(log_dir: Path) -> None:
    servers = [start(hostile("accepts_never_reads", tcp()), log_dir) for _ in range(2)]
    stop_all()
    assert [server.alive() for server in servers] == [False, False]
    assert all(server.stop().problems() == [] for server in servers)


def test_start_is_bounded_for_a_server_that_ignores_sigterm_and_never_listens(
        log_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text("import signal, time\nsignal.alarm(600)\n"
                      "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n")
    spec = LaunchSpec(argv=[sys.executable, str(script)], cwd=str(tmp_path), address=tcp(),
                      name="stubborn")
    began = time.monotonic()
    with pytest.raises(ServerStartError, match="did not accept"):
        start(spec, log_dir, ready_timeout=1.0)
    assert time.monotonic() - began < 1.0 + SLACK


ESCAPE_WITHOUT_TOKEN = """
import os, signal, sys
signal.alarm(600)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
if os.fork() == 0:
    os.setsid()
    # exec with an empty environment: no token, outside the group; only the
    # ancestry remembered from an earlier snapshot ties it to the server.
    listener = (
        "import signal, socket, time; signal.alarm(600); s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {sys.argv[1]})); s.listen(); time.sleep(600)")
    os.execve(sys.executable, [sys.executable, "-c", listener], {})
signal.sigwait({signal.SIGUSR1})  # the test says when the parent may die
os._exit(0)
"""


def test_escapee_without_token_is_remembered_from_an_earlier_snapshot(log_dir: Path) -> None:
    address = tcp()
    spec = LaunchSpec(argv=[sys.executable, "-c", ESCAPE_WITHOUT_TOKEN, str(address.port)],
                      cwd=str(REPO), address=address, name="escapee")
    with start(spec, log_dir) as server:
        escaped = [pid for pid in server.group_pids() if pid != server.pid]
        assert len(escaped) == 1  # seen while its parent is alive: remembered
        assert b"SOCKSPEC_SERVER_TOKEN" not in Path(f"/proc/{escaped[0]}/environ").read_bytes()
        os.kill(server.pid, signal.SIGUSR1)
        assert wait_for(lambda: server.exit_status() == 0)
        assert server.group_pids() == escaped  # now an orphan of the harness
        seen = identities(server)
    assert server.stop().problems() == []
    assert_gone(seen)


def test_processes_not_attributed_to_the_server_are_never_signalled(log_dir: Path) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.alarm(600); time.sleep(600)"],
        start_new_session=True)
    try:
        with start(hostile("orphan_grandchild", tcp()), log_dir) as server:
            assert bystander.pid not in server.group_pids()
            server.pause()
            server.resume()
        assert server.stop().problems() == []
        stop_all()
        assert bystander.poll() is None
    finally:
        os.killpg(bystander.pid, signal.SIGKILL)
        bystander.wait()


def test_non_loopback_address_is_refused(log_dir: Path) -> None:
    spec = hostile("accepts_never_reads", TcpAddress("192.0.2.1", 9))
    with pytest.raises(AddressError, match="not a loopback address"):
        start(spec, log_dir)


# -- pure parts and the readiness primitive --------------------------------------------------


def test_wait_until_accepting() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = TcpAddress("127.0.0.1", listener.getsockname()[1])
        assert wait_until_accepting(address, time.monotonic() + IO_TIMEOUT)
        listener.accept()[0].close()
    assert not wait_until_accepting(tcp(), time.monotonic() + 0.3)
    began = time.monotonic()
    assert not wait_until_accepting(tcp(), time.monotonic() + IO_TIMEOUT,
                                    proc_alive=lambda: False)
    assert time.monotonic() - began < IO_TIMEOUT / 2


def test_attribution_follows_group_ancestry_memory_and_token() -> None:
    def proc(pid: int, ppid: int, pgid: int, state: str = "S") -> ProcInfo:
        return ProcInfo(pid, ppid, pgid, state, starttime=pid * 10)

    table = {info.pid: info for info in [
        proc(1, 0, 1), proc(90, 1, 90),           # init, the harness's parent
        proc(100, 90, 100),                        # the harness
        proc(200, 100, 200, "Z"),                  # server leader, exited, unreaped
        proc(201, 1, 200),                         # still in the server's group
        proc(202, 201, 202),                       # child of a group member
        proc(300, 100, 300),                       # orphan with the token
        proc(301, 300, 300),                       # its child
        proc(400, 100, 400),                       # another of the harness's children
        proc(500, 100, 500),                       # orphan remembered from a snapshot
        proc(600, 1, 600),                         # unrelated, not ours
    ]}
    found = attribute_processes(
        table, leader=(200, 2000), pgid=200, known={(500, 5000), (400, 1), (100, 1000)},
        harness_pid=100, has_token=lambda info: info.pid == 300)
    assert sorted(found) == [200, 201, 202, 300, 301, 500]
    untrusted = attribute_processes(table, leader=(200, 2000), pgid=None, known=set(),
                                    harness_pid=100, has_token=lambda info: False)
    assert sorted(untrusted) == [200]


def test_stop_report_problems() -> None:
    clean = StopReport(exit_status=-15, needed_sigkill=False, leftover_pids=[],
                       address_still_held=False, name="srv", address="tcp:127.0.0.1:9")
    assert clean.problems() == []
    bad = StopReport(exit_status=-9, needed_sigkill=True, leftover_pids=[7, 8],
                     address_still_held=True, name="srv", address="tcp:127.0.0.1:9", grace=3.0,
                     lifetime_exceeded=True)
    assert bad.problems() == [
        "srv outlived its lifetime and was stopped by the watchdog",
        "srv did not exit within 3 s of SIGTERM; killed with SIGKILL",
        "srv left processes running after stop: pid 7, 8",
        "tcp:127.0.0.1:9 is still held by a listener after srv stopped",
    ]


def test_startup_failure_quotes_the_end_of_a_long_stderr(log_dir: Path) -> None:
    argv = [sys.executable, "-c",
            "import sys; sys.stderr.write('a' * 100000 + 'END\\n'); sys.exit(5)"]
    spec = LaunchSpec(argv=argv, cwd=str(REPO), address=tcp(), name="noisy")
    with pytest.raises(ServerStartError, match=r"exited with status 5 .*stderr: .*END$"):
        start(spec, log_dir)


def test_log_names_are_sanitised(log_dir: Path) -> None:
    spec = LaunchSpec(argv=["build/x"], cwd=str(REPO), address=tcp(), name="a/b c")
    with pytest.raises(ServerStartError):
        start(spec, log_dir)
    assert sorted(p.name for p in log_dir.iterdir()) == ["a_b_c.stderr.log", "a_b_c.stdout.log"]
