"""Bounded time on dead servers: the short path.

A server that accepts connections and never answers (or that stopped
accepting) makes every scenario wait out its own timeouts: the whole catalogue
took minutes to say the same thing twenty times. Once a target has shown it
over a transport, the remaining scenarios for that target and transport take
a short path: a quick probe before each, and if the server is still dead the
scenario is not run; it fails at once with evidence saying so. Every family
still gets its own verdict.

A merely slow server must not be declared dead:

- the trigger is a probe, not a guess from a scenario's evidence: after a
  scenario failed, the exact basic exchange (a short echo, or a GET of a small
  file: the request ``probe_service`` sends) is tried on the same server with
  ``CONFIRM_TIMEOUT_S``, as long as basic itself waits for its reply. Only a
  server that sends nothing back at all (no byte, no FIN, no RST: also not
  after our FIN) or that refuses the connection is marked dead;
- the mark is re-checked before every later item, on that item's own server
  (shared or fresh), with the same exchange and ``REPROBE_TIMEOUT_S``. A
  server that answers it is alive again and the scenario runs as usual. A
  server that buffers its echo until the client's FIN answers after our FIN
  (``AFTER_FIN_S``) and counts as alive.

Per worker process and per (target, transport); nothing here judges a family.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

from sockspec.drivers.load import PROBE_BODY, PROBE_FILE, PROBE_PAYLOAD
from sockspec.errors import ConnectError, HarnessError, SockspecError
from sockspec.protocol.conversation import first_request
from sockspec.reference.http_fetch import build_get_request, host_header
from sockspec.targets import PROFILES
from sockspec.transport import connect, send_all
from sockspec.under_test.server import ServerUnderTest

# The first probe, right after a scenario failed: as long as basic waits for its reply.
CONFIRM_TIMEOUT_S = 5.0
# Before each later item: the server has already been silent for a whole scenario
# and CONFIRM_TIMEOUT_S; a basic exchange on loopback takes well under 1 ms.
REPROBE_TIMEOUT_S = 1.0
# After our FIN: a server that echoes only at end of stream answers now.
AFTER_FIN_S = 0.25

ANSWERED, CLOSED, RESET, NO_ANSWER, NEVER_ACCEPTS = (
    "answered", "closed", "reset", "no answer", "never accepts")
DEAD_STATES = (NO_ANSWER, NEVER_ACCEPTS)


@dataclass(frozen=True)
class Probe:
    """One basic exchange tried on a server, and how it went."""

    state: str          # ANSWERED, CLOSED, RESET, NO_ANSWER or NEVER_ACCEPTS
    detail: str         # one line
    waited_s: float     # the answer timeout the probe gave the server
    elapsed_s: float

    @property
    def dead(self) -> bool:
        return self.state in DEAD_STATES


def probe_request(server: ServerUnderTest) -> bytes:
    """The basic exchange's request: a short echo, a GET of a small file it just wrote, or
    a declared protocol's first exchange."""
    if server.profile == "echo":
        return PROBE_PAYLOAD
    if server.profile not in PROFILES:
        return first_request(server.protocol)
    server.put_file(PROBE_FILE, PROBE_BODY)
    return build_get_request(f"/{PROBE_FILE}", host=host_header(server.address))


def probe(server: ServerUnderTest, timeout: float) -> Probe:
    """Connect, send the basic request, wait ``timeout`` for any byte, FIN or RST.

    Nothing by then: half-close and wait ``AFTER_FIN_S`` more. Raises HarnessError
    when the harness could not prepare the request (its own trouble).
    """
    request = probe_request(server)
    started = time.perf_counter()

    def done(state: str, detail: str) -> Probe:
        return Probe(state, detail, timeout, time.perf_counter() - started)

    try:
        sock = connect(server.address, timeout)
    except ConnectError as exc:
        return done(NEVER_ACCEPTS, str(exc))
    with sock:
        try:
            send_all(sock, request)
        except SockspecError as exc:
            return done(RESET, f"sending the {len(request)}-byte request failed: {exc}")
        state = _first_reply(sock, timeout)
        if state is None:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            state = _first_reply(sock, AFTER_FIN_S)
        if state is None:
            return done(NO_ANSWER, f"sent the {len(request)}-byte basic request; nothing came "
                        f"back within {timeout:g} s, nor {AFTER_FIN_S:g} s after our FIN")
        return done(state, f"sent the {len(request)}-byte basic request: {state}")


def _first_reply(sock: socket.socket, timeout: float) -> str | None:
    """ANSWERED (a byte came), CLOSED (FIN), RESET, or None: nothing within ``timeout``."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return None
    try:
        return ANSWERED if sock.recv(65536) else CLOSED
    except OSError:
        return RESET


@dataclass(frozen=True)
class DeadMark:
    """A (target, transport) that did not answer a basic exchange."""

    first_seen: str     # the scenario after whose failure it was first seen
    probe: Probe

    def describe(self, detail: bool = True) -> str:
        what = ("did not accept a connection" if self.probe.state == NEVER_ACCEPTS
                else "did not answer a basic exchange")
        seen = f"{self.first_seen}: {self.probe.detail}" if detail else self.first_seen
        return f"the server {what} within {self.probe.waited_s:g} s (seen first in {seen})"

    def facts(self, *, short_path: bool) -> dict[str, object]:
        """Structured facts for the results record (reports/causes.py groups by them)."""
        return {"no_answer" if self.probe.state == NO_ANSWER else "never_accepts": True,
                "first_seen": self.first_seen, "waited_s": self.probe.waited_s,
                **({"short_path": True} if short_path else {})}


@dataclass
class Liveness:
    """This worker's dead marks, one per (target name, transport)."""

    confirm_timeout: float = CONFIRM_TIMEOUT_S
    reprobe_timeout: float = REPROBE_TIMEOUT_S
    _dead: dict[tuple[str, str], DeadMark] = field(default_factory=dict)

    def is_dead(self, key: tuple[str, str]) -> bool:
        return key in self._dead

    def after_failure(self, key: tuple[str, str], server: ServerUnderTest,
                      scenario_id: str) -> DeadMark | None:
        """A scenario failed on ``server``: is it still serving? The mark, if it is not.

        A server whose process has exited is not probed: it died, and the pool starts
        a new one for the next item.
        """
        if key in self._dead or not _running(server):
            return None
        try:
            found = probe(server, self.confirm_timeout)
        except HarnessError:
            return None
        if not found.dead:
            return None
        self._dead[key] = mark = DeadMark(scenario_id, found)
        return mark

    def short_path(self, key: tuple[str, str], server: ServerUnderTest) -> str | None:
        """Before an item: the evidence of its short path, or None when it should run.

        Re-probes the item's own server; one that answers clears the mark.
        """
        mark = self._dead.get(key)
        if mark is None:
            return None
        try:
            again = probe(server, self.reprobe_timeout)
        except HarnessError:
            return None
        if not again.dead:
            del self._dead[key]
            return None
        again_text = ("refused the connection" if again.state == NEVER_ACCEPTS else
                      f"sent nothing back to the basic request within {again.waited_s:g} s, "
                      f"nor {AFTER_FIN_S:g} s after our FIN")
        return (f"short path: {mark.describe(detail=False)}; before this scenario it again "
                f"{again_text}, so the scenario was not run")

    def mark(self, key: tuple[str, str]) -> DeadMark | None:
        return self._dead.get(key)


def _running(server: ServerUnderTest) -> bool:
    process = server.managed_process
    return process is None or process.alive()
