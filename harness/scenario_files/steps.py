"""Running a scenario file: against a server under test (role server), or as the server
of a client under test (role client: run_client_scenario).

Every actor runs its steps in order, each in a thread of its own when there are
several (a single actor runs in the caller's thread). The first step that finds the
server wrong raises ScenarioFailed naming the file, the line and the step, with what
was expected and what arrived; the other actors are then stopped (their sockets shut,
their barriers broken) and what they saw afterwards is not reported. Every wait is
the step's ``timeout`` (or the file's), times the run's time scale.

Role client: the harness listens on the client's transport, starts the client under
test (ClientUnderTest.run, in a thread of its own) with the listener's address, and
runs the steps at the same time: ``accept`` takes the client's connections, ``client
...`` waits for the client to end and judges it. Once the steps end, pass or fail,
every connection and the listener are closed and the client is waited for (its run
is bounded by its time limit, then stopped by its process group).
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from sockspec.errors import ConnectError, PeerError, UsageError
from sockspec.scenario_files.syntax import MAIN_ACTOR, MAX_BYTES, Actor, ScenarioFile, Step
from sockspec.transport import RECV_CHUNK, connect, describe_os_error, send_all
from sockspec.verdict import SHOULD, ScenarioFailed

TIME_SCALE_ENV = "SOCKSPEC_TIME_SCALE"
MAX_TIME_SCALE = 100.0
ACCEPT_POLL_S = 0.05         # role client: how often accept looks whether the client ended
CLIENT_POLL_S = 0.05         # role client: how often a wait for the client looks for a stop
# role client: past the client's time limit, its stop and its last output take this long
# at most (sockspec.process.client: STOP_GRACE, OUTPUT_SETTLE), plus slack
CLIENT_END_SLACK_S = 15.0


def parse_time_scale(text: str) -> float:
    """``--time-scale F`` / SOCKSPEC_TIME_SCALE: a number above 0 and at most 100."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_TIME_SCALE:
        raise UsageError(f"the time scale must be a number above 0 and at most "
                         f"{MAX_TIME_SCALE:g}, got {text!r}")
    return value


def time_scale(option: float | None) -> float:
    """The run's factor on every timeout, pause and silence of scenario files: the
    option, else SOCKSPEC_TIME_SCALE, else 1."""
    if option is not None:
        return option
    text = os.environ.get(TIME_SCALE_ENV)
    return parse_time_scale(text) if text else 1.0


class ScriptError(UsageError):
    """A scenario file asked for something impossible at run time (a closed connection)."""


class _Stopped(Exception):
    """Another actor failed first: this one stops without a verdict of its own."""


def preview(data: bytes, width: int = 64) -> str:
    shown = repr(bytes(data[:width]))
    return shown + (f"... ({len(data)} bytes)" if len(data) > width else "")


@dataclass
class Connection:
    name: str
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    end: str | None = None          # "FIN" or "RST" once the server ended its side
    reply: bytes | None = None      # the last value received (what expect checks)
    sent: bytes = b""               # the last payload sent
    owed: int = 0                   # framed requests sent whose reply was not read
    closed_at: int = 0              # the line that closed it (0: open)

    def fill(self, deadline: float) -> str:
        """One recv into the buffer: "data", "end" (FIN or RST) or "timeout"."""
        if self.end is not None:
            return "end"
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(RECV_CHUNK)
        except TimeoutError:
            return "timeout"
        except (ConnectionResetError, BrokenPipeError):
            self.end = "RST"
            return "end"
        if not chunk:
            self.end = "FIN"
            return "end"
        self.buffer += chunk
        if len(self.buffer) > MAX_BYTES:
            raise PeerError(f"over {MAX_BYTES} bytes arrived unread")
        return "data"


class Broken(Exception):
    """A barrier that can no longer be met (its message says why)."""


class Meeting:
    """A barrier of ``parties`` actor copies, passed any number of times.

    Unlike threading.Barrier, an actor released from a pass stays released whatever
    happens next; an actor that names the barrier and ends (``leave``) breaks it, so
    whoever waits there, or comes later, fails at once instead of at its timeout."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.generation = 0
        self.broken = ""
        self.cond = threading.Condition()

    def wait(self, timeout: float) -> None:
        with self.cond:
            if self.broken:
                raise Broken(self.broken)
            generation = self.generation
            self.arrived += 1
            if self.arrived == self.parties:
                self.arrived = 0
                self.generation += 1
                self.cond.notify_all()
                return
            self.cond.wait_for(lambda: self.generation != generation or bool(self.broken),
                               timeout)
            if self.generation != generation:
                return
            if not self.broken:
                self.broken = f"not every actor reached it within {timeout:g} s"
                self.cond.notify_all()
            raise Broken(self.broken)

    def leave(self, why: str) -> None:
        with self.cond:
            if not self.broken:
                self.broken = why
            self.cond.notify_all()


class Shared:
    """What the actors of one run share: the stop signal, the barriers, the first failure."""

    def __init__(self, scenario: ScenarioFile) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self.barriers = {name: Meeting(parties) for name, parties in scenario.barriers.items()}
        self.connections: list[Connection] = []
        # role client: the harness's listener, when accepting may start, the client's run
        self.listener: socket.socket | None = None
        self.accept_from = 0.0
        self.client: ClientHandle | None = None

    def record(self, failure: BaseException) -> None:
        with self.lock:
            if self.failure is None and not self.stop.is_set():
                self.failure = failure
            self.stop.set()
            connections = list(self.connections)
        for barrier in self.barriers.values():
            barrier.leave("another actor failed")
        for conn in connections:   # wake actors blocked in recv or send
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ActorRun:
    """One copy of one actor: its connections, its variables, its steps in order."""

    def __init__(self, scenario: ScenarioFile, actor: Actor, copy: int, address, scale: float,
                 shared: Shared) -> None:
        self.scenario = scenario
        self.actor = actor
        self.label = actor.name if actor.copies == 1 else f"{actor.name} #{copy}"
        self.address = address
        self.scale = scale
        self.shared = shared
        self.framing = scenario.framing
        self.forbidden = self.framing.forbidden() if self.framing is not None else b""
        self.rng = random.Random(f"{scenario.id}/{actor.name}/{copy}")
        self.values: dict[str, bytes] = {}
        if actor.var:
            self.values[actor.var] = str(copy).encode()
        self.conns: dict[str, Connection] = {}
        # what expect checks, and who sends it: the server's replies, or (role client)
        # the client's requests
        self.what, self.peer = ("request", "client") if scenario.role == "client" else \
            ("reply", "server")

    # -- running

    def run(self) -> None:
        try:
            self.steps(self.actor.steps)
        finally:
            for conn in self.conns.values():
                if not conn.closed_at:
                    conn.sock.close()
            for name, barrier in self.shared.barriers.items():
                if self._names_barrier(self.actor.steps, name):
                    # whoever waits there, or comes later, would wait for us forever
                    barrier.leave(f"actor {self.label} ended without reaching it")

    def _names_barrier(self, steps, name: str) -> bool:
        return any((s.verb == "barrier" and s.name == name) or self._names_barrier(s.body, name)
                   for s in steps)

    def steps(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            if self.shared.stop.is_set():
                raise _Stopped
            getattr(self, "do_" + step.verb)(step)

    def timeout(self, step: Step) -> float:
        return (step.timeout if step.timeout is not None else self.scenario.timeout) * self.scale

    def fail(self, step: Step, problem: str, level: str | None = None, **facts: object):
        if self.shared.stop.is_set():
            raise _Stopped
        details: dict[str, object] = {}
        if len(self.scenario.actors) > 1 or self.actor.name != MAIN_ACTOR or self.actor.copies > 1:
            details["actor"] = self.label
        if step.conn:
            details["connection"] = step.conn
        details.update(facts)
        raise ScenarioFailed(f"{self.scenario.path.name}:{step.line}: {step.text}: {problem}",
                             level=level, **details)

    def conn(self, step: Step) -> Connection:
        conn = self.conns.get(step.conn)
        if conn is None:
            raise ScriptError(f"{self.scenario.path.name}:{step.line}: {step.text}: connection "
                              f"{step.conn!r} is not open (its `connect` did not run)")
        if conn.closed_at:
            raise ScriptError(f"{self.scenario.path.name}:{step.line}: {step.text}: connection "
                              f"{step.conn!r} was closed on line {conn.closed_at}; "
                              f"`connect {step.conn}` opens it again")
        return conn

    # -- steps

    def do_connect(self, step: Step) -> None:
        old = self.conns.get(step.name)
        if old is not None and not old.closed_at:
            old.sock.close()
        try:
            sock = connect(self.address, self.timeout(step), nodelay=True)
        except ConnectError as exc:
            self.fail(step, str(exc))
        self.opened(step, sock)

    def opened(self, step: Step, sock: socket.socket) -> None:
        conn = Connection(step.name, sock)
        self.conns[step.name] = conn
        with self.shared.lock:
            self.shared.connections.append(conn)
            stopped = self.shared.stop.is_set()
        if stopped:
            sock.close()
            raise _Stopped

    def do_send(self, step: Step) -> None:
        conn = self.conn(step)
        payload = step.data.render(self.values, self.rng, b"" if step.raw else self.forbidden)
        wire = payload
        if not step.raw:
            try:
                wire = self.framing.encode(payload)
            except ValueError as exc:
                raise ScriptError(f"{self.scenario.path.name}:{step.line}: {step.text}: "
                                  f"{exc}") from None
            conn.owed += 1
        if self.scenario.role == "client":
            # the harness answered: the next expect or capture reads the client's next request
            conn.owed = 1
        conn.sent = payload
        conn.sock.settimeout(self.timeout(step))
        try:
            if not step.dribble:
                send_all(conn.sock, wire)
                return
            for offset in range(len(wire)):   # one byte per segment (TCP_NODELAY is on)
                send_all(conn.sock, wire[offset:offset + 1])
                if offset + 1 < len(wire) and self.shared.stop.wait(step.seconds * self.scale):
                    raise _Stopped
        except PeerError as exc:
            self.fail(step, str(exc), sending=preview(wire))

    def read(self, step: Step, conn: Connection, mode: str, deadline: float) -> bytes:
        """Bytes from the connection as ``mode`` says; fails the step when they do not come."""
        timeout = self.timeout(step)
        while True:
            found = self.found(step, conn, mode)
            if found is not None:
                return found
            if conn.end is not None:
                if mode == "eof":
                    self.fail(step, f"the stream ended with RST, not FIN "
                              f"({len(conn.buffer)} bytes before it)",
                              received=preview(conn.buffer))
                self.fail(step, f"the stream ended with {conn.end} before {self.wanted(step)}",
                          received=preview(conn.buffer))
            try:
                filled = conn.fill(deadline)
            except PeerError as exc:
                self.fail(step, str(exc))
            if filled == "timeout":
                self.fail(step, f"no {self.wanted(step)} within {timeout:g} s",
                          received=preview(conn.buffer))

    def found(self, step: Step, conn: Connection, mode: str) -> bytes | None:
        buffer = conn.buffer
        if mode in ("count", "sent"):
            size = step.count if mode == "count" else len(conn.sent)
            return self.take(conn, size) if len(buffer) >= size else None
        if mode == "until":
            delimiter = step.data.render(self.values)
            at = buffer.find(delimiter)
            return self.take(conn, at + len(delimiter)) if at >= 0 else None
        if mode == "regex":
            match = step.pattern.search(buffer)
            return self.take(conn, match.end()) if match else None
        if mode == "eof":
            return self.take(conn, len(buffer)) if conn.end == "FIN" else None
        try:   # frame
            decoded = self.framing.decode(buffer, at_end=conn.end == "FIN")
        except ValueError as exc:
            self.fail(step, f"the {self.what} breaks the framing ({self.framing.describe()}): {exc}",
                      received=preview(buffer))
        if decoded is None:
            return None
        payload, used = decoded
        del buffer[:used]
        return payload

    @staticmethod
    def take(conn: Connection, size: int) -> bytes:
        data = bytes(conn.buffer[:size])
        del conn.buffer[:size]
        return data

    def wanted(self, step: Step) -> str:
        mode = step.mode if step.verb == "recv" else "frame"
        if mode == "count":
            return f"{step.count} bytes"
        if mode == "sent":
            return "as many bytes as were sent"
        if mode == "until":
            return f"delimiter {preview(step.data.render(self.values))}"
        if mode == "regex":
            return f"match of /{step.pattern.pattern.decode(errors='replace')}/"
        if mode == "eof":
            return "FIN"
        return f"complete {self.what} frame ({self.framing.describe()})"

    def do_recv(self, step: Step) -> None:
        conn = self.conn(step)
        deadline = time.monotonic() + self.timeout(step)
        conn.reply = self.read(step, conn, step.mode, deadline)
        if step.mode == "frame" and conn.owed:
            conn.owed -= 1

    def reply(self, step: Step, conn: Connection) -> bytes:
        """What expect and capture check: the reply to the oldest framed request not yet
        read (one frame), else the last value received."""
        if self.framing is not None and (conn.owed or conn.reply is None):
            deadline = time.monotonic() + self.timeout(step)
            conn.reply = self.read(step, conn, "frame", deadline)
            conn.owed = max(conn.owed - 1, 0)
        if conn.reply is None:
            raise ScriptError(f"{self.scenario.path.name}:{step.line}: {step.text}: nothing "
                              f"was received on connection {step.conn!r} to check")
        return conn.reply

    def do_expect(self, step: Step) -> None:
        conn = self.conn(step)
        if step.mode in ("eof", "rst", "silence"):
            return self.expect_end(step, conn)
        got = self.reply(step, conn)
        if step.mode == "exact":
            want = step.data.render(self.values)
            if got != want:
                self.fail(step, f"the {self.what} differs{difference(want, got)}",
                          expected=preview(want), received=preview(got))
        elif step.mode == "regex":
            if step.pattern.search(got) is None:
                self.fail(step, f"the {self.what} does not match",
                          expected=f"/{step.pattern.pattern.decode(errors='replace')}/",
                          received=preview(got))
        elif step.mode == "length":
            if len(got) != step.count:
                self.fail(step, f"the {self.what} is {len(got)} bytes, not {step.count}",
                          received=preview(got))
        elif got != conn.sent:
            self.fail(step, f"the {self.what} is not the payload sent{difference(conn.sent, got)}",
                      expected=preview(conn.sent), received=preview(got))
        return None

    def expect_end(self, step: Step, conn: Connection) -> None:
        if step.mode == "silence":
            period = step.seconds * self.scale
            deadline = time.monotonic() + period
            if conn.buffer:
                self.fail(step, f"{len(conn.buffer)} bytes arrived where silence was expected",
                          received=preview(conn.buffer))
            filled = conn.fill(deadline)
            while filled == "timeout" and time.monotonic() < deadline:
                filled = conn.fill(deadline)
            if filled == "data":
                self.fail(step, f"bytes arrived within {period:g} s of silence",
                          received=preview(conn.buffer))
            if filled == "end":
                self.fail(step, f"the {self.peer} ended the stream with {conn.end} during "
                          f"{period:g} s of expected silence")
            return
        timeout = self.timeout(step)
        deadline = time.monotonic() + timeout
        if step.mode == "eof" and conn.buffer:
            self.fail(step, "bytes arrived where the end (FIN) was expected",
                      received=preview(conn.buffer))
        while conn.end is None:
            filled = conn.fill(deadline)
            if filled == "timeout":
                self.fail(step, f"the stream did not end within {timeout:g} s (no "
                          f"{'FIN' if step.mode == 'eof' else 'RST'})",
                          received=preview(conn.buffer))
            if filled == "data" and step.mode == "eof":
                self.fail(step, "bytes arrived where the end (FIN) was expected",
                          received=preview(conn.buffer))
        want = "FIN" if step.mode == "eof" else "RST"
        if conn.end != want:
            self.fail(step, f"the stream ended with {conn.end}, not {want}",
                      received=preview(conn.buffer))
        conn.buffer.clear()

    def do_capture(self, step: Step) -> None:
        conn = self.conn(step)
        got = self.reply(step, conn)
        match = step.pattern.search(got)
        if match is None:
            self.fail(step, f"capture {step.name}: the {self.what} does not match",
                      expected=f"/{step.pattern.pattern.decode(errors='replace')}/",
                      received=preview(got))
        self.values[step.name] = match.group(1) if match.groups() else match.group(0)

    def do_set(self, step: Step) -> None:
        self.values[step.name] = step.data.render(self.values, self.rng, self.forbidden)

    def do_shutdown(self, step: Step) -> None:
        conn = self.conn(step)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.fail(step, f"shutdown(SHUT_WR) failed: {describe_os_error(exc)}")

    def do_close(self, step: Step) -> None:
        conn = self.conn(step)
        conn.sock.close()
        conn.closed_at = step.line

    def do_reset(self, step: Step) -> None:
        conn = self.conn(step)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()
        conn.closed_at = step.line

    def do_pause(self, step: Step) -> None:
        if self.shared.stop.wait(step.seconds * self.scale):
            raise _Stopped

    def do_barrier(self, step: Step) -> None:
        timeout = self.timeout(step)
        try:
            self.shared.barriers[step.name].wait(timeout)
        except Broken as exc:
            self.fail(step, f"barrier {step.name!r} broken: {exc}")

    # -- role client: the harness plays the server

    def do_accept(self, step: Step) -> None:
        shared = self.shared
        assert shared.listener is not None and shared.client is not None
        early = shared.accept_from - time.monotonic()
        if early > 0 and shared.stop.wait(early):
            raise _Stopped
        timeout = self.timeout(step)
        deadline = time.monotonic() + timeout
        while True:
            if shared.stop.is_set():
                raise _Stopped
            ended = shared.client.done.is_set()   # before accept(): a last look after the end
            try:
                sock, _ = shared.listener.accept()
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                self.fail(step, f"accept() failed: {describe_os_error(exc)}")
            if ended:
                self.fail(step, f"the client ended ({shared.client.describe()}) without "
                          "connecting")
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(step, f"no connection from the client within {timeout:g} s")
            select.select([shared.listener], [], [], min(left, ACCEPT_POLL_S))
        sock.setblocking(True)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened(step, sock)

    def wait_client(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the client to end; False if it is still running."""
        done = self.shared.client.done
        deadline = time.monotonic() + seconds
        while not done.is_set():
            if self.shared.stop.is_set():
                raise _Stopped
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            done.wait(min(left, CLIENT_POLL_S))
        return True

    def do_client(self, step: Step) -> None:
        handle = self.shared.client
        assert handle is not None
        if step.mode == "finishes":
            period = step.seconds * self.scale
            if not self.wait_client(period):
                self.fail(step, f"the client was still running {period:g} s later")
            return
        if not self.wait_client(handle.bound):
            self.fail(step, f"the client's run did not end within {handle.bound:g} s")
        run = handle.result()
        target = handle.client.target
        if run.timed_out:
            self.fail(step, f"the client did not finish within its stated limit (timeout_s = "
                      f"{target.timeout_s:g}): still running after {run.time_limit:g} s, "
                      "stopped by the harness")
        status = run.exit_status
        if step.mode == "succeeds":
            if status != target.success_status:
                self.fail(step, f"the client {run.describe_exit()}, not with its success status "
                          f"{target.success_status}")
        elif step.mode == "fails":
            if status == target.success_status:
                self.fail(step, f"the client reported success (status {status}) although this "
                          "server broke the exchange")
            if not target.is_failure_status(status):
                self.fail(step, f"the client {run.describe_exit()}, which is not one of its "
                          f"failure statuses ({target.describe_failure_statuses()})")
            if not run.stderr_tail.strip():
                self.fail(step, f"the client failed ({run.describe_exit()}) without a word on "
                          "stderr", level=SHOULD)
        else:
            self.client_reported(step, run.reported)

    def client_reported(self, step: Step, reported) -> None:
        if reported.missing:
            self.fail(step, f"the client reported nothing: {reported.describe()}")
        if not reported.complete_in_head:
            self.fail(step, f"the client's report is {reported.describe()}: over "
                      f"{len(reported.head)} bytes, more than a scenario file compares")
        got = reported.head
        if step.mode == "reported-regex":
            if step.pattern.search(got) is None:
                self.fail(step, "the client's report does not match",
                          expected=f"/{step.pattern.pattern.decode(errors='replace')}/",
                          reported=preview(got, 200))
            return
        want = step.data.render(self.values)
        if got != want:
            self.fail(step, f"the client's report differs{difference(want, got)}",
                      expected=preview(want, 200), reported=preview(got, 200))

    def do_repeat(self, step: Step) -> None:
        for number in range(1, step.count + 1):
            if step.var:
                self.values[step.var] = str(number).encode()
            self.steps(step.body)


def difference(want: bytes, got: bytes) -> str:
    for offset, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f" at byte {offset}"
    if len(want) != len(got):
        return f" ({len(got)} bytes where {len(want)} were expected)"
    return ""


def run_scenario(scenario: ScenarioFile, address, scale: float = 1.0) -> None:
    """Run every actor of ``scenario`` against the server at ``address``; raise the first
    failure (ScenarioFailed) or script error."""
    shared = Shared(scenario)
    _run_actors(scenario, shared, address, scale)


def _run_actors(scenario: ScenarioFile, shared: Shared, address, scale: float) -> None:
    runs = [ActorRun(scenario, actor, copy, address, scale, shared)
            for actor in scenario.actors for copy in range(1, actor.copies + 1)]
    if len(runs) == 1:
        try:
            runs[0].run()
        except _Stopped:
            pass
        if shared.failure is not None:
            raise shared.failure
        return
    threads = [threading.Thread(target=_actor_thread, args=(run, shared), daemon=True,
                                name=f"sockspec-actor-{run.label}") for run in runs]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
    except BaseException:
        shared.record(_Stopped())   # a signal: stop every actor, then let it through
        for thread in threads:
            thread.join(1.0)
        raise
    if shared.failure is not None:
        raise shared.failure


def _actor_thread(run: ActorRun, shared: Shared) -> None:
    try:
        run.run()
    except _Stopped:
        pass
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
        shared.record(exc)


# -- role client ---------------------------------------------------------------------------


class ClientHandle:
    """The client under test, run once (ClientUnderTest.run) in a thread of its own."""

    def __init__(self, client, address, time_limit: float) -> None:
        self.client = client
        self.time_limit = time_limit
        # run_client returns at most this long after its start (limit, stop, last output)
        self.bound = time_limit + CLIENT_END_SLACK_S
        self.done = threading.Event()
        self.run = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(address,), daemon=True,
                                       name="sockspec-client-under-test")

    def _run(self, address) -> None:
        try:
            self.run = self.client.run(address, time_limit=self.time_limit)
        except BaseException as exc:  # noqa: BLE001 - raised in the scenario's thread
            self.error = exc
        finally:
            self.done.set()

    def result(self):
        if self.error is not None:
            raise self.error
        return self.run

    def describe(self) -> str:
        if self.run is None:
            return str(self.error) if self.error is not None else "still running"
        return f"{self.run.describe_exit()}; stderr: {self.run.stderr_lines()}"


def run_client_scenario(scenario: ScenarioFile, client, scale: float = 1.0) -> None:
    """Play the server of ``scenario`` (role client) for ``client`` (a ClientUnderTest):
    listen, start the client with the listener's address, run every actor meanwhile;
    raise the first failure (ScenarioFailed) or script error. The client is always
    waited for (bounded) before this returns."""
    shared = Shared(scenario)
    listener = client.listen(scenario.backlog)
    listener.sock.setblocking(False)
    shared.listener = listener.sock
    shared.accept_from = time.monotonic() + scenario.accept_after * scale
    limit = client.default_time_limit * max(scale, 1.0)
    handle = shared.client = ClientHandle(client, listener.address, limit)
    handle.thread.start()
    interrupted = False
    try:
        _run_actors(scenario, shared, None, scale)
    except Exception:
        raise
    except BaseException:
        interrupted = True   # a signal: do not wait for the client's time limit
        raise
    finally:
        # pass or fail: nothing of the harness's server may keep the client waiting
        with shared.lock:
            shared.stop.set()
            connections = list(shared.connections)
        for conn in connections:
            if not conn.closed_at:
                conn.sock.close()
        listener.close()
        handle.thread.join(1.0 if interrupted else handle.bound)
    if handle.error is not None:
        raise handle.error
