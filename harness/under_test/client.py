"""A client target brought to life: the ``client`` fixture object of client scenarios.

Joins client targets (what to run), the adversary (the server the harness
plays) and process control (sockspec.process.client). Each ClientUnderTest owns
a private directory in /tmp (short enough for Unix socket paths) holding the
server's socket, the client's input {in} and output {out} files and its logs;
close() stops every server it started and removes the directory.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sockspec import suspend
from sockspec.adversary import AdversaryServer, Listening, Plan, max_length_unix_path
from sockspec.errors import ClientStartError
from sockspec.preparing import write_file, write_sparse_file
from sockspec.process.client import CapturedOutput, ClientRun, run_client
from sockspec.reference.listener import Listener, open_listener
from sockspec.targets.clients import ClientTarget, client_placeholder_values, render_client_argv
from sockspec.targets.servers import TRANSPORT_HOSTS
from sockspec.toxics.fronts import Fronts
from sockspec.transport import Address, TcpAddress, UnixAddress
from sockspec.under_test.ports import PortAllocator, make_socket_dir, remove_socket_dir

# A client that judges nothing slowly still gets its own stated limit twice over,
# plus this, before the harness stops it.
RUN_LIMIT_SLACK_S = 5.0
# The path an http client is told to GET ({url_path}) unless a scenario says otherwise.
DEFAULT_URL_PATH = "/sockspec/client-data.bin"


class ClientUnderTest:
    """What a client scenario sees: start servers to face the client, run the client."""

    def __init__(self, target: ClientTarget, transport: str, allocator: PortAllocator,
                 fronts: Fronts | None = None) -> None:
        self.target = target
        self.transport = transport
        # Under toxics: a relay in front of each server served, and the client is given
        # the relay's address (sockspec.toxics).
        self.fronts = fronts
        suspend.install()  # a stop of the harness must not read as the client's failure
        self.workdir = Path(make_socket_dir())
        self.runs: list[ClientRun] = []
        self.servers: list[AdversaryServer] = []
        self.listeners: list[Listener] = []
        self._allocator = allocator

    def check_startable(self) -> None:
        """Raise ClientStartError now (a setup error) if the program cannot be found.

        A client runs inside the scenario, where a start failure would look like
        the client's own failure; this catches a wrong path or a missing build first.
        """
        program = self.target.template_for(self.transport)[0]
        if not os.path.isdir(self.target.cwd):
            raise ClientStartError(f"{self.target.name}: no directory {self.target.cwd}")
        if os.sep in program:
            found = os.path.join(self.target.cwd, program)
            usable = os.path.isfile(found) and os.access(found, os.X_OK)
        else:
            usable = shutil.which(program) is not None
        if not usable:
            raise ClientStartError(f"{self.target.name}: cannot start {program}: no such "
                                   f"executable (from {self.target.cwd})")

    @property
    def profile(self) -> str:
        return self.target.profile

    @property
    def timeout_s(self) -> float:
        """The client's stated limit on any wait (``timeout_s`` in its table)."""
        return self.target.timeout_s

    @property
    def default_time_limit(self) -> float:
        return 2 * self.target.timeout_s + RUN_LIMIT_SLACK_S

    def plan(self, data: bytes, **changes: object) -> Plan:
        """The exchange of ``data`` for this client's profile, changed as a scenario says.

        echo: the client sends ``data`` and the server owes it back; http: the
        client GETs DEFAULT_URL_PATH and the server owes ``data`` as the body; a
        declared protocol: the client sends its own requests and the server answers
        each as declared (``data`` is unused; sockspec.adversary.declared).
        """
        if self.target.protocol is not None:
            return Plan(self.profile, protocol=self.target.protocol, **changes)
        if self.profile == "echo":
            return Plan("echo", **changes)
        return Plan("http", **{"body": data, "url_path": DEFAULT_URL_PATH, **changes})

    def serve(self, plan: Plan, listening: Listening | None = None, *,
              max_length_path: bool = False) -> AdversaryServer:
        """Start the harness's server for this client's transport; stopped by close()."""
        if plan.profile != self.profile:
            raise ValueError(f"a {plan.profile} plan for a {self.profile} client")
        server = AdversaryServer(self._address(max_length_path), plan, listening)
        server.start()
        self.servers.append(server)
        if self.fronts is not None:
            self.fronts.front(server.address, program_upstream=False)
        return server

    def listen(self, backlog: int) -> Listener:
        """A bare listener on this client's transport, for code that plays the server
        step by step (scenario files of role client); closed by close()."""
        listener = open_listener(self._address(False), backlog)
        self.listeners.append(listener)
        if self.fronts is not None:
            self.fronts.front(listener.address, program_upstream=False)
        return listener

    def sparse_file(self, name: str, size: int, marker: bytes) -> Path:
        """A file of ``size`` bytes, all holes (zeros, no disk space) but ``marker`` at its end."""
        return write_sparse_file(self.workdir / name, size, marker,
                                 "write the sparse file served to the client")

    def run(self, address: Address, *, payload: bytes | None = None, url_path: str = "/",
            time_limit: float | None = None) -> ClientRun:
        """Run the client once against ``address``: echo ``payload``, or GET ``url_path``.

        The echo input is the file {in}, and also the client's standard input.
        What the client reports is judged from its stdout, or from {out} when its
        table says output = "file"; the output file is removed once read.
        """
        if self.fronts is not None:
            address = self.fronts.route(address)
        number = len(self.runs) + 1
        run_dir = self.workdir / f"run{number}"
        input_path = write_file(run_dir / "in.bin", payload or b"",
                                "write the client's input file")
        output_path = run_dir / "out.bin"
        values = client_placeholder_values(
            host=getattr(address, "host", ""), port=getattr(address, "port", 0),
            path=getattr(address, "path", ""), input_path=str(input_path),
            output_path=str(output_path), url_path=url_path)
        argv = render_client_argv(self.target.template_for(self.transport), values)
        started = time.monotonic()
        result = run_client(
            argv, cwd=self.target.cwd, time_limit=time_limit or self.default_time_limit,
            log_dir=run_dir, name=self.target.name, address=address,
            stdin_path=input_path if self.profile == "echo" else None)
        if self.target.output == "file":
            result.output = CapturedOutput.of_file(output_path)
            output_path.unlink(missing_ok=True)  # may be 2 GiB
        self.runs.append(result)
        # The harness's server stood still while the harness was stopped: the
        # client's timeout then is the harness's trouble, whatever the client did.
        suspend.check_not_suspended(started, f"the run of {self.target.name}")
        return result

    def run_against(self, server: AdversaryServer, data: bytes, *,
                    time_limit: float | None = None) -> ClientRun:
        """Run the client for the exchange ``self.plan(data)`` planned on ``server``."""
        if self.target.protocol is not None:
            return self.run(server.address, time_limit=time_limit)
        if self.profile == "echo":
            return self.run(server.address, payload=data, time_limit=time_limit)
        return self.run(server.address, url_path=server.plan.url_path, time_limit=time_limit)

    def facts(self) -> dict[str, object]:
        """Evidence about the last run and the harness's server, for every failed verdict."""
        found: dict[str, object] = {"client": self.target.name, "transport": self.transport}
        if self.runs:
            last = self.runs[-1]
            found["command"] = " ".join(last.argv)
            found["client_exit"] = last.describe_exit()
            found["client_reported"] = last.reported.describe()
            found["stderr_tail"] = last.stderr_tail.strip()[-1500:] or "(empty)"
            if last.stop_problems:
                found["after_stop"] = "; ".join(last.stop_problems)
        if self.servers:
            found["server_side"] = "\n    ".join(server.describe() for server in self.servers)
        return found

    def close(self) -> None:
        if self.fronts is not None:
            self.fronts.close()
        for server in self.servers:
            server.stop()
        for listener in self.listeners:
            listener.close()
        remove_socket_dir(str(self.workdir))

    def _address(self, max_length_path: bool) -> Address:
        if self.transport == "unix":
            directory = str(self.workdir)
            if max_length_path:
                return UnixAddress(max_length_unix_path(directory))
            return UnixAddress(f"{directory}/server.sock")
        if max_length_path:
            raise ValueError("a maximum-length path is a Unix socket idea")
        host = TRANSPORT_HOSTS[self.transport]
        return TcpAddress(host, self._allocator.allocate(host))
