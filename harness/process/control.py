"""ServerProcess: start a server under test, wait until it accepts, stop it for good.

Readiness (the exact target address accepting, on a listener of the server's
own) is probed by sockspec.process.readiness; output is drained by
sockspec.process.output; which processes are the server's is decided by
sockspec.process.tree.
"""


from __future__ import annotations

import atexit
import os
import secrets
import signal
import stat
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Self

from sockspec.errors import AddressError, ServerStartError, SockspecError
from sockspec.iproute import in_private_network_namespace
from sockspec.process import lifeline
from sockspec.process.output import OutputDrain, open_logs
from sockspec.process.readiness import (
    listening_socket_inodes,
    tcp_port_listened,
    wait_until_accepting,
)
from sockspec.process.tree import (
    TOKEN_ENV,
    Identity,
    ProcInfo,
    attribute_processes,
    become_subreaper,
    read_process_table,
    read_stat,
    send_signal,
)
from sockspec.transport import Address, UnixAddress

WATCH_INTERVAL = 0.2            # seconds between ancestry snapshots / reaping / watchdog
KILL_WAIT = 1.0                 # SIGKILL ends a task at once unless it sleeps in D state
START_FAILURE_GRACE = 0.5       # SIGTERM grace when start() gives up
REAP_WAIT = 1.0                 # for zombies reparented to us as the leader exits

# The one piece of module state: atexit and signal handlers get no arguments, so
# stop_all() needs a registry to find servers still running. Weak, so it never keeps
# a finished server alive; a running one is kept alive by its own watcher thread.
_LIVE_SERVERS: weakref.WeakSet[ServerProcess] = weakref.WeakSet()
# Processes of programs under test found running outside their process group when
# they were stopped (daemons, setsid() escapees): stopped one by one, and counted
# for the run's last line.
_ESCAPED_STOPPED = [0]


def escaped_processes_stopped() -> int:
    """How many escaped processes this process has stopped so far."""
    return _ESCAPED_STOPPED[0]


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    cwd: str
    address: Address
    name: str
    env: dict[str, str] | None = None


@dataclass
class StopReport:
    exit_status: int | None
    needed_sigkill: bool
    leftover_pids: list[int]
    address_still_held: bool
    name: str = "server"
    address: str = ""
    grace: float = 0.0
    lifetime_exceeded: bool = False
    escaped_pids: list[int] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What was found and handled, not a fault of the stop: escaped processes."""
        if not self.escaped_pids:
            return []
        pids = ", ".join(map(str, self.escaped_pids))
        count = len(self.escaped_pids)
        return [f"{self.name} left {count} process{'es' if count > 1 else ''} outside its "
                f"process group (pid {pids}); the harness stopped "
                f"{'them' if count > 1 else 'it'}"]

    def problems(self) -> list[str]:
        found = []
        if self.lifetime_exceeded:
            found.append(f"{self.name} outlived its lifetime and was stopped by the watchdog")
        if self.needed_sigkill:
            found.append(f"{self.name} did not exit within {self.grace:g} s of SIGTERM; "
                         f"killed with SIGKILL")
        if self.leftover_pids:
            pids = ", ".join(map(str, self.leftover_pids))
            found.append(f"{self.name} left processes running after stop: pid {pids}")
        if self.address_still_held:
            found.append(f"{self.address} is still held by a listener after {self.name} stopped")
        return found


def stop_all() -> None:
    """Stop every ServerProcess still running in this process, in parallel."""
    threads = [threading.Thread(target=server.stop, daemon=True) for server in list(_LIVE_SERVERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10.0)


# Our threads are daemons, so interpreter exit reaches atexit without waiting for them.
atexit.register(stop_all)


def describe_exit(status: int) -> str:
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


class ServerProcess:
    """One running server under test. Create with ServerProcess.start()."""

    def __init__(self, spec: LaunchSpec, popen: subprocess.Popen[bytes], token: str,
                 logs: tuple[BinaryIO, BinaryIO], lifetime: float,
                 stdout_observer: Callable[[bytes], None] | None = None) -> None:
        self.spec, self.address = spec, spec.address
        self.pid = self.pgid = popen.pid
        self._popen = popen
        assert popen.stdout is not None and popen.stderr is not None
        # An escapee that lost the token (env -i) still holds these: see _claims().
        self._pipes = {f"pipe:[{os.fstat(stream.fileno()).st_ino}]"
                       for stream in (popen.stdout, popen.stderr)}
        self._token = f"{TOKEN_ENV}={token}".encode()
        leader = read_stat(popen.pid)  # unreaped, so this pid is still ours
        self._leader: Identity = (popen.pid, leader.starttime if leader else -1)
        self._leader_exit: int | None = None
        self._leader_lost = False  # someone else reaped our pid: pgid no longer trusted
        self._known: set[Identity] = set()
        self._without_token: set[Identity] = set()
        self._lock = threading.Lock()  # serialises reaping and shutdown
        self._report: StopReport | None = None
        self._lifetime_exceeded = False
        self._lifetime_deadline = time.monotonic() + lifetime
        self._stdout = OutputDrain(popen.stdout, logs[0], f"{spec.name}-stdout",
                                   observer=stdout_observer)
        self._stderr = OutputDrain(popen.stderr, logs[1], f"{spec.name}-stderr")
        self.stdout_path, self.stderr_path = self._stdout.path, self._stderr.path
        self._watchdog_key = f"{self._leader[0]}.{self._leader[1]}"
        lifeline.watch_group(self._watchdog_key, self.pgid, token, lifetime)
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"{spec.name}-watch",
                                         daemon=True)
        _LIVE_SERVERS.add(self)
        self._watcher.start()

    @classmethod
    def start(cls, spec: LaunchSpec, *, log_dir: Path, ready_timeout: float = 10.0,
              lifetime: float = 900.0) -> ServerProcess:
        deadline = time.monotonic() + ready_timeout
        # Inside a namespace the harness made (the wire lab), every address is its own.
        if not spec.address.is_loopback() and not in_private_network_namespace():
            raise AddressError(f"{spec.name}: {spec.address} is not a loopback address; "
                               f"servers under test may only be reached on loopback")
        server = cls._spawn(spec, log_dir=log_dir, lifetime=lifetime)
        foreign_listener = False

        def listener_is_ours() -> bool:
            # Something else may accept there (another run's server on a colliding
            # port): that is not readiness; ours may still bind, or exit EADDRINUSE.
            nonlocal foreign_listener
            ours = server._listens_itself()
            foreign_listener = not ours
            return ours

        try:
            if wait_until_accepting(spec.address, deadline, proc_alive=server._may_still_listen,
                                    confirm=listener_is_ours):
                return server
            exited = not server._may_still_listen()
        except BaseException:
            server.stop(START_FAILURE_GRACE)
            raise
        status = server.exit_status()
        server._shutdown(START_FAILURE_GRACE, signal.SIGTERM)
        if exited and status is not None:
            lines = [line.strip() for line in server.stderr_tail().splitlines() if line.strip()]
            said = " | ".join(lines[-3:])[-300:] or "(empty)"
            raise ServerStartError(f"{spec.name} {describe_exit(status)} before accepting on "
                                   f"{spec.address}; stderr: {said}")
        foreign = " (another process listens there)" if foreign_listener else ""
        raise ServerStartError(f"{spec.name} did not accept on {spec.address} "
                               f"within {ready_timeout:g} s{foreign}")

    @classmethod
    def _spawn(cls, spec: LaunchSpec, *, log_dir: Path, lifetime: float,
               stdin: BinaryIO | int = subprocess.DEVNULL,
               stdout_observer: Callable[[bytes], None] | None = None,
               start_error: type[SockspecError] = ServerStartError) -> Self:
        """Start ``spec.argv`` in a new session and process group, output drained; no waiting.

        Shared by servers (start() then waits for readiness) and run-to-completion
        clients (sockspec.process.client). Raises ``start_error`` with one line.
        """
        if not spec.argv:
            raise start_error(f"{spec.name}: empty command line")
        try:
            become_subreaper()
        except OSError as exc:
            raise start_error(f"{spec.name}: cannot become a child subreaper: "
                              f"{exc.strerror}") from None
        logs = open_logs(Path(log_dir), spec.name)
        token = secrets.token_hex(16)
        try:
            popen = lifeline.popen(  # SIGKILLed if the harness dies; watched from outside
                spec.argv, cwd=spec.cwd, env={**os.environ, **(spec.env or {}), TOKEN_ENV: token},
                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                close_fds=True, start_new_session=True)
        except OSError as exc:
            for log in logs:
                log.close()
            if exc.filename is not None and str(exc.filename) == str(spec.cwd):
                raise start_error(f"{spec.name}: cannot change to directory {spec.cwd}: "
                                  f"{exc.strerror}") from None
            raise start_error(
                f"{spec.name}: cannot start {spec.argv[0]}: {exc.strerror}") from None
        try:
            return cls(spec, popen, token, logs, lifetime, stdout_observer)
        except BaseException:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            raise

    # -- observation -------------------------------------------------------------

    def exit_status(self) -> int | None:
        """The server pid's status, Popen.returncode style; None while it runs."""
        self._leader_exited()
        return self._leader_exit

    def alive(self) -> bool:
        return not self._leader_exited() or bool(self.group_pids())

    def group_pids(self) -> list[int]:
        if self._report is not None:
            return self._report.leftover_pids
        return sorted(pid for pid, info in self._snapshot().items() if info.live)

    def fd_count(self) -> int:
        return sum(len(_listdir(f"/proc/{pid}/fd")) for pid in self.group_pids())

    def rss_bytes(self) -> int:
        page = os.sysconf("SC_PAGE_SIZE")
        total = 0
        for pid in self.group_pids():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):
                pass
        return total

    def stdout_tail(self, max_bytes: int = 4096) -> str:
        return self._stdout.tail(max_bytes)

    def stderr_tail(self, max_bytes: int = 4096) -> str:
        return self._stderr.tail(max_bytes)

    # -- control -----------------------------------------------------------------

    def pause(self) -> None:
        """SIGSTOP the group and every attributed process outside it."""
        self._signal_unless_stopped(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_unless_stopped(signal.SIGCONT)

    def kill_hard(self) -> None:
        """SIGKILL everything now and reap it; a later stop() returns this report."""
        self._shutdown(0.0, signal.SIGKILL)

    def stop(self, grace: float = 3.0) -> StopReport:
        """SIGTERM, then SIGKILL after ``grace`` s; verify, reap, free the address."""
        return self._shutdown(grace, signal.SIGTERM)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------

    def _leader_exited(self) -> bool:
        if self._leader_exit is not None or self._leader_lost:
            return True
        if self._popen.returncode is not None:
            self._leader_exit = self._popen.returncode
            return True
        try:
            # WNOWAIT: look without reaping, so the pid (hence the pgid) stays ours.
            result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            self._leader_lost = True
            return True
        if result is None:
            return False
        exited = result.si_code == os.CLD_EXITED
        self._leader_exit = result.si_status if exited else -result.si_status
        return True

    def _listens_itself(self) -> bool:
        """Whether the socket listening on our address is one of the server's own."""
        pids = self.group_pids()
        ours: set[str] = set()
        for pid in pids:
            for fd in _listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    ours.add(link[len("socket:["):-1])
        if not ours:
            # No process of ours holds a socket (none runs, e.g. it exited with
            # EADDRINUSE): whatever accepted the probe is someone else's.
            return False
        # Read the listener table in the server's own network namespace.
        return any(listening_socket_inodes(self.address, f"/proc/{pid}") & ours
                   for pid in pids[:1])

    def _may_still_listen(self) -> bool:
        if not self._leader_exited():
            return True
        if self._leader_exit not in (0, None):
            return False  # a failed start is reported at once, lingering children or not
        return bool(self.group_pids())  # daemonised: the parent exited 0, a child may bind

    def _snapshot(self) -> dict[int, ProcInfo]:
        trust_pgid = self._popen.returncode is None and not self._leader_lost
        found = attribute_processes(
            read_process_table(), leader=self._leader, pgid=self.pgid if trust_pgid else None,
            known=self._known, harness_pid=os.getpid(), has_token=self._has_token,
            claims=self._claims)
        new = [info.identity for info in found.values() if info.identity not in self._known]
        self._known.update(info.identity for info in found.values())  # one C call: atomic
        if new:
            lifeline.watch_processes(self._watchdog_key, new)
        return found

    def _claims(self, orphan: ProcInfo) -> bool:
        """An orphan of the harness without our token: ours if it holds our pipes or listener.

        Only a process in a session other than the harness's (the harness's own tools
        share its session) and attributed to no other live program is considered.
        """
        if orphan.session == os.getsid(0):
            return False
        if _cmdline(orphan.pid) == _cmdline(os.getpid()):
            # The harness's own fork between setsid() and exec() (another program being
            # started right now): it still holds copies of every descriptor, ours too.
            return False
        for other in list(_LIVE_SERVERS):
            if other is not self and (orphan.pid == other.pid
                                      or orphan.identity in other._known):
                return False
        links = set()
        for fd in _listdir(f"/proc/{orphan.pid}/fd"):
            try:
                links.add(os.readlink(f"/proc/{orphan.pid}/fd/{fd}"))
            except OSError:
                continue
        if links & self._pipes:
            return True
        sockets = {link[len("socket:["):-1] for link in links if link.startswith("socket:[")}
        return bool(sockets) and bool(
            listening_socket_inodes(self.address, f"/proc/{orphan.pid}") & sockets)

    def _has_token(self, info: ProcInfo) -> bool:
        if info.identity in self._without_token:
            return False
        try:
            with open(f"/proc/{info.pid}/environ", "rb") as f:
                if self._token in f.read():
                    return True
        except OSError:
            return False
        self._without_token.add(info.identity)
        return False

    def _reap_orphans(self, found: Mapping[int, ProcInfo]) -> None:
        """waitpid() our attributed zombies, never any server's own Popen pid."""
        protected = {server.pid for server in list(_LIVE_SERVERS)} | {self.pid}
        harness_pid = os.getpid()
        for info in found.values():
            if info.state == "Z" and info.ppid == harness_pid and info.pid not in protected:
                try:
                    os.waitpid(info.pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _signal_all(self, sig: int, found: Mapping[int, ProcInfo]) -> set[Identity]:
        in_group = self._popen.returncode is None and not self._leader_lost
        if in_group:
            try:
                os.killpg(self.pgid, sig)
            except OSError:
                pass
        for info in found.values():
            if not in_group or info.pgid != self.pgid:
                send_signal(info, sig)
        return {info.identity for info in found.values()}

    def _signal_unless_stopped(self, sig: int) -> None:
        with self._lock:  # shutdown reaps the leader, after which the pgid is not ours
            if self._report is None:
                self._signal_all(sig, self._snapshot())

    def _reap_until_gone(self, deadline: float) -> None:
        """Reap the leader and every attributed zombie, until none is left or the deadline.

        One pass is not enough: a child that died while the leader still ran is a
        zombie of the leader's, and only becomes ours (the subreaper's) as the
        leader exits, possibly after the pass that reaped the others.
        """
        harness_pid = os.getpid()
        while True:
            if self._leader_exited() and not self._leader_lost and self._popen.returncode is None:
                self._popen.wait()  # dead already: returns at once; the pgid is released
            found = self._snapshot()
            self._reap_orphans(found)
            ours = [info for info in found.values()
                    if info.live or (info.state == "Z" and info.ppid == harness_pid)]
            if not ours or time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def _wait_gone(self, deadline: float, sig: int, signalled: set[Identity],
                   escaped: set[int] | None = None) -> bool:
        """Signal late-found processes until none is left; note those outside the group."""
        delay = 0.005
        seen_none = False
        while True:
            found = self._snapshot()
            self._reap_orphans(found)
            live = [info for info in found.values() if info.live]
            if not live:
                # Twice: a child forked while /proc was being listed, by a parent that
                # then exited, is in neither listing's reach the first time, but it
                # exists (reparented to us) before the second listing begins.
                if seen_none:
                    return True
                seen_none = True
                time.sleep(0.002)
                continue
            seen_none = False
            for info in live:
                if info.identity not in signalled:  # forked after we signalled the rest
                    send_signal(info, sig)
                    signalled.add(info.identity)
                if escaped is not None and info.pgid != self.pgid:
                    escaped.add(info.pid)
            if time.monotonic() >= deadline:
                return False
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.05)

    def _watch(self) -> None:
        while not self._watch_stop.wait(WATCH_INTERVAL):
            if time.monotonic() >= self._lifetime_deadline:
                self._lifetime_exceeded = True
                self.stop()
                return
            if self._lock.acquire(timeout=WATCH_INTERVAL):
                try:
                    if not self._watch_stop.is_set():
                        self._reap_orphans(self._snapshot())
                finally:
                    self._lock.release()

    def _shutdown(self, grace: float, first_signal: int) -> StopReport:
        with self._lock:
            if self._report is not None:
                return self._report
            self._watch_stop.set()
            deadline = time.monotonic() + grace
            first = self._snapshot()
            # Outside the group: in the first listing, or found later (a fork chain
            # hops while it is being stopped).
            escaped = {pid for pid, info in first.items()
                       if info.live and info.pgid != self.pgid}
            signalled = self._signal_all(first_signal, first)
            if first_signal != signal.SIGKILL:
                # A stopped (paused) process acts on SIGTERM only once continued.
                self._signal_all(signal.SIGCONT, self._snapshot())
            needed_sigkill = False
            if not self._wait_gone(deadline, first_signal, signalled, escaped):
                needed_sigkill = first_signal != signal.SIGKILL
                self._signal_all(signal.SIGKILL, self._snapshot())
                self._wait_gone(time.monotonic() + KILL_WAIT, signal.SIGKILL, set(), escaped)
            self._reap_until_gone(time.monotonic() + REAP_WAIT)
            final = self._snapshot()
            leftovers = sorted(pid for pid, info in final.items() if info.live)
            if threading.current_thread() is not self._watcher:
                self._watcher.join(timeout=2 * WATCH_INTERVAL)
            drains_deadline = time.monotonic() + 0.5
            self._stdout.finish(drains_deadline)
            self._stderr.finish(drains_deadline)
            self._report = StopReport(
                exit_status=self.exit_status(), needed_sigkill=needed_sigkill,
                leftover_pids=leftovers, address_still_held=self._release_address(),
                name=self.spec.name, address=str(self.address), grace=grace,
                lifetime_exceeded=self._lifetime_exceeded, escaped_pids=sorted(escaped))
            _ESCAPED_STOPPED[0] += len(escaped)
            if not leftovers:  # else the watchdog still kills them when the harness ends
                lifeline.unwatch_group(self._watchdog_key)
            _LIVE_SERVERS.discard(self)
            return self._report

    def _release_address(self) -> bool:
        """Remove a Unix socket file left behind; say whether a TCP port is still held."""
        if isinstance(self.address, UnixAddress):
            try:
                if stat.S_ISSOCK(os.lstat(self.address.path).st_mode):
                    os.unlink(self.address.path)
            except OSError:
                pass
            return False
        return tcp_port_listened(self.address)



def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []

