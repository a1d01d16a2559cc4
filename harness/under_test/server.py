"""A target brought to life: one running server under test and its workspace.

Joins targets (what to run), allocation (where) and process control (how).
Each server gets a private directory in /tmp holding its Unix socket, its
document root and its output logs; stopping the server removes it.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sockspec.errors import ServerStartError, SockspecError
from sockspec.preparing import write_file, write_sparse_file
from sockspec.process import (
    LaunchSpec,
    ServerProcess,
    StopReport,
    tcp_port_listened,
    wait_until_accepting,
)
from sockspec.targets.servers import TRANSPORT_HOSTS, Target, placeholder_values, render_argv
from sockspec.transport import Address, TcpAddress, UnixAddress
from sockspec.under_test.ports import PortAllocator, make_socket_dir, remove_socket_dir

if TYPE_CHECKING:
    from sockspec.isolate import Isolation

ACCEPT_CHECK_TIMEOUT = 1.0
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class StartPolicy:
    """Time limits for every server the harness starts."""

    ready_timeout: float = 10.0
    stop_grace: float = 3.0
    lifetime: float = 900.0


@dataclass
class ServerUnderTest:
    """What a scenario sees of the server it drives."""

    target: Target
    transport: str
    address: Address
    workdir: Path
    policy: StartPolicy
    managed_process: ServerProcess | None
    stop_reports: list[StopReport] = field(default_factory=list)

    @property
    def process(self) -> ServerProcess:
        """The server's process; only for targets the harness started itself."""
        if self.managed_process is None:
            raise SockspecError(
                f"{self.target.name} is already running ({self.target.source}): "
                "the harness does not control its process"
            )
        return self.managed_process

    @property
    def profile(self) -> str:
        return self.target.profile

    @property
    def protocol(self):
        """Its declared protocol (sockspec.protocol.declared.Protocol); for echo and http,
        the built-in declaration of that profile (sockspec.protocol.builtin)."""
        from sockspec.protocol.builtin import protocol_of

        return protocol_of(self.target)

    @property
    def root(self) -> Path:
        """The document root of an http target ({root}); scenarios fill it."""
        if self.target.root:
            return Path(self.target.root)
        return self.workdir / "root"

    @property
    def outside_root(self) -> Path:
        """A directory next to the root, for files the server must never serve."""
        return self.root.parent

    def put_file(self, relative: str, data: bytes = b"") -> Path:
        """Write into the document root; a failure is HarnessError (the harness's trouble)."""
        return write_file(self.root / relative, data, "write the document root file")

    def put_sparse_file(self, relative: str, size: int, marker: bytes) -> Path:
        """A file of ``size`` bytes, all holes except ``marker`` at its very end."""
        return write_sparse_file(self.root / relative, size, marker,
                                 "write the sparse document root file")

    def alive(self) -> bool:
        if self.managed_process is None:
            return wait_until_accepting(self.address, time.monotonic() + ACCEPT_CHECK_TIMEOUT)
        return self.managed_process.alive()

    def fd_count(self) -> int:
        return self.process.fd_count()

    def stderr_tail(self, max_bytes: int = 2048) -> str:
        return self.process.stderr_tail(max_bytes)

    def facts(self) -> dict[str, object]:
        """Evidence about the process, attached to every failed verdict."""
        if self.managed_process is None:
            return {"server": self.target.name, "address": str(self.address),
                    "server_state": f"already running ({self.target.source}), not managed"}
        status = self.process.exit_status()
        return {
            "server": self.target.name,
            "address": str(self.address),
            "command": " ".join(self.process.spec.argv),
            "server_state": "running" if status is None else f"exited with status {status}",
            "stderr_tail": self.stderr_tail().strip() or "(empty)",
        }

    def kill_hard(self) -> None:
        """SIGKILL the whole process group, as a crash or `kill -9` would."""
        self.process.kill_hard()

    def start_again(self) -> None:
        """Start the same command on the same address (after kill_hard or a crash)."""
        self.stop_reports.append(self.process.stop(self.policy.stop_grace))
        self.managed_process = ServerProcess.start(
            self.process.spec,
            log_dir=self.workdir / "logs",
            ready_timeout=self.policy.ready_timeout,
            lifetime=self.policy.lifetime,
        )

    def stop(self) -> StopReport | None:
        report = None
        if self.managed_process is not None:
            report = self.managed_process.stop(self.policy.stop_grace)
            self.stop_reports.append(report)
        remove_socket_dir(str(self.workdir))
        return report


def attach_server(target: Target, policy: StartPolicy) -> ServerUnderTest:
    """A target that is already running: check it accepts, start nothing."""
    assert target.connect is not None
    if not wait_until_accepting(target.connect, time.monotonic() + policy.ready_timeout):
        raise ServerStartError(
            f"{target.name}: nothing accepts connections at {target.connect} "
            f"(waited {policy.ready_timeout:g} s)"
        )
    workdir = Path(make_socket_dir())
    return ServerUnderTest(target, target.connect.transport, target.connect, workdir, policy, None)


class LeftoverProcesses(SockspecError):
    """A program under test left processes behind (escaped or still running): ``error``."""


def stop_findings(reports: list[StopReport]) -> tuple[list[str], str | None]:
    """(lines for the evidence, the error to raise if a process was left behind).

    Left behind: a process outside the program's process group that the harness
    had to find and stop (a daemon, a fork chain), or one still running after
    the stop. Either way the item is ``error``: the harness had to clean up after
    the program, and the program should run in the foreground, in its group.
    """
    lines = [line for report in reports for line in (*report.notes(), *report.problems())]
    left = [line for report in reports if report.escaped_pids for line in report.notes()]
    left += [line for report in reports if report.leftover_pids for line in report.problems()
             if "left processes running" in line]
    return lines, "; ".join(left) if left else None


class PortTaken(ServerStartError):
    """The start failed and another process listens on the server's port."""


def start_server(
    target: Target, transport: str, allocator: PortAllocator, policy: StartPolicy,
    host: str | None = None,
) -> ServerUnderTest:
    """Start ``target`` over ``transport`` in a fresh workspace; raise ServerStartError.

    ``host`` replaces the transport's loopback address (the wire lab's IPv6 server
    listens on an address of its namespace).

    A port is free when allocated but may be taken before the server binds it
    (by another sockspec run, or anything else on the machine). When a start
    fails and someone else now listens on its port, it is retried on another.
    """
    last: PortTaken | None = None
    for _ in range(PORT_ATTEMPTS):
        try:
            return _start_once(target, transport, allocator, policy, host)
        except PortTaken as taken:
            last = taken
    raise ServerStartError(f"{last} (tried {PORT_ATTEMPTS} ports; another process took "
                           f"each one first)")


def _start_once(
    target: Target, transport: str, allocator: PortAllocator, policy: StartPolicy,
    host: str | None,
) -> ServerUnderTest:
    workdir = Path(make_socket_dir())
    try:
        (workdir / "root").mkdir()
        (workdir / "logs").mkdir()
        address = _address_for(transport, workdir, allocator, host)
        values = placeholder_values(
            host=getattr(address, "host", ""),
            port=getattr(address, "port", 0),
            path=getattr(address, "path", ""),
            root=str(workdir / "root"),
        )
        spec = LaunchSpec(
            argv=render_argv(target.template_for(transport), values),
            cwd=target.cwd,
            address=address,
            name=target.name,
        )
        try:
            process = ServerProcess.start(
                spec,
                log_dir=workdir / "logs",
                ready_timeout=policy.ready_timeout,
                lifetime=policy.lifetime,
            )
        except ServerStartError as exc:
            # start() has stopped our server: a listener there now is someone else's.
            if isinstance(address, TcpAddress) and tcp_port_listened(address):
                raise PortTaken(str(exc)) from None
            raise
    except BaseException:
        remove_socket_dir(str(workdir))
        raise
    return ServerUnderTest(target, transport, address, workdir, policy, process)


def _address_for(transport: str, workdir: Path, allocator: PortAllocator,
                 host: str | None = None) -> Address:
    if transport == "unix":
        return UnixAddress(os.path.join(workdir, "s.sock"))
    host = host or TRANSPORT_HOSTS[transport]
    return TcpAddress(host, allocator.allocate(host))


@dataclass
class ServerPool:
    """Servers shared by the cheap scenarios of one worker, one per (target, transport)."""

    allocator: PortAllocator
    policy: StartPolicy
    # --isolate: each managed target's servers start, run and stop in its own namespace.
    isolation: Isolation | None = None
    _shared: dict[tuple[str, str], ServerUnderTest] = field(default_factory=dict)
    # Stop reports of shared servers not yet handed to an item (take_stop_reports()).
    _unreported: list[StopReport] = field(default_factory=list)

    def shared(self, target: Target, transport: str) -> ServerUnderTest:
        key = (target.name, transport)
        current = self._shared.get(key)
        if current is not None and current.alive():
            return current
        if current is not None:
            self._keep(current.stop())
        self._shared[key] = self.fresh(target, transport)
        return self._shared[key]

    def fresh(self, target: Target, transport: str) -> ServerUnderTest:
        if not target.managed:
            return attach_server(target, self.policy)
        with self.inside(target):
            return start_server(target, transport, self.allocator, self.policy)

    def inside(self, target: Target) -> AbstractContextManager[object]:
        """The calling thread in ``target``'s namespace under --isolate; else nothing."""
        if self.isolation is None or not target.managed:
            return nullcontext()
        return self.isolation.entered(target.name)

    def stop_all(self) -> list[StopReport]:
        """Stop every shared server; return every stop report not taken yet."""
        for server in self._shared.values():
            with self.inside(server.target):
                self._keep(server.stop())
        self._shared.clear()
        return self.take_stop_reports()

    def take_stop_reports(self) -> list[StopReport]:
        """Reports of shared servers stopped since the last call (for the item at hand)."""
        taken, self._unreported = self._unreported, []
        return taken

    def _keep(self, report: StopReport | None) -> None:
        if report is not None:
            self._unreported.append(report)
