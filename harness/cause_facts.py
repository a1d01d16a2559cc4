"""Structured facts a broken item carries into its results record (``facts``).

The evidence is for people; these few machine-readable facts let
reports/causes.py group failures that share one cause without reading prose:

- the facts a verdict attached (``fail(summary, stream_end="RST",
  observed_bytes=0, ...)``: ScenarioFailed.facts), kept when they are plain
  scalars (strings cut at ``MAX_TEXT``);
- ``status``: an HTTP error status (4xx, 5xx) the verdict names (``status=400``,
  or ``HTTP/1.1 400``, ``HTTP 400``, ``status 400`` in one of its facts);
- ``server_exited``: the server's process had exited when the verdict came;
- ``never_started``: the server never started or never accepted its first
  connection (ServerStartError);
- ``connect_error``/``peer_error``: a connect or a send/recv that failed and
  was not caught by the scenario (its one-line message);
- from harness/liveness.py: ``no_answer``/``never_accepts``, ``first_seen``,
  ``waited_s`` and ``short_path``.
"""

from __future__ import annotations

import re

from sockspec.errors import ConnectError, PeerError, ServerStartError

MAX_TEXT = 300
_STATUS = re.compile(r"\b(?:HTTP(?:/\d\.\d)?|[Ss]tatus) (\d{3})\b")


def failure_facts(exc: BaseException | None, server_state: str | None = None) -> dict:
    """The facts of one failed phase: ``exc`` what failed it, ``server_state`` as
    ServerUnderTest.facts() says it ("running", "exited with status 3", ...)."""
    facts: dict[str, object] = {}
    raw = getattr(exc, "facts", None)
    if isinstance(raw, dict):
        for key, value in raw.items():
            if isinstance(value, bool | int | float) or value is None:
                facts[key] = value
            elif isinstance(value, str):
                facts[key] = value[:MAX_TEXT]
        status = http_status(raw)
        if status is not None:
            facts["status"] = status
    if isinstance(exc, ServerStartError):
        facts["never_started"] = True
    elif isinstance(exc, ConnectError):
        facts["connect_error"] = str(exc)[:MAX_TEXT]
    elif isinstance(exc, PeerError):
        facts["peer_error"] = str(exc)[:MAX_TEXT]
    if server_state and server_state.startswith("exited"):
        facts["server_exited"] = True
    return facts


def http_status(raw: dict) -> int | None:
    """The HTTP error status (400-599) a verdict reports: an int ``status``, else the
    first ``HTTP/x.y NNN``, ``HTTP NNN`` or ``status NNN`` in its text facts, in order."""
    status = raw.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return status
    for value in raw.values():
        for found in _STATUS.finditer(value if isinstance(value, str) else ""):
            if 400 <= int(found.group(1)) <= 599:
                return int(found.group(1))
    return None
