"""Root causes: failures across families that share one cause, grouped under it.

One defect can break many families at once: a server that answers every
request with 400 fails a dozen of them, each looking like its own problem; a
server that never answers makes every scenario wait and fail. A person needs
the cause first. ``find_causes`` reads the results records (their structured
``facts``, see harness/cause_facts.py and harness/liveness.py, and the first
lines of their evidence where a verdict gave no fact) and returns one cause
per group of broken items (``failed`` or ``error``) of one target:

====================  =====================================================  ==========
cause                 the items it groups                                     fix first
====================  =====================================================  ==========
``never-started``     the server never started or never accepted              basic
``no-answer``         connected (or tried to) and nothing came back: no byte, basic, else the
                      no FIN, no RST (liveness probes, short-path items,      family where it
                      timeouts after 0 bytes, connections refused); without   was seen first
                      a liveness probe's word, only when basic failed so
``server-died``       the server's process had exited at the verdict          by precedence
``same-status``       every check saw the same HTTP error status (e.g. 400)   basic
``reset``             connections reset before any byte of the answer         basic
``early-fin``         the stream ended with FIN before all that was owed      by precedence
``same-offset``       the stream ended (RST, or nothing more) at the same     by precedence
                      byte offset in several scenarios
``rst-after-data``    the stream ended with RST after part of the answer      graceful-close
``basic-exchange``    basic failed, and others failed on their first request  basic
``own``               a family's failures that share no cause with another    that family
====================  =====================================================  ==========

A shared cause needs broken items of at least two families (``never-started``
one, and ``no-answer`` one when a liveness probe found the server dead: both say
why nothing could be judged). Rules are
tried in the table's order; each item belongs to at most one cause. "By
precedence" means the family earliest in ``PRECEDENCE``: the behaviours the
others rest on (a server must read a message whole before it can echo 8 MiB
to a slow reader). Causes are listed per target, the cause to fix first
first.

Pure functions over the results records: no harness, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

BROKEN = ("failed", "error")

# Fix-first order: the behaviours other families rest on come first.
PRECEDENCE = (
    "basic", "partial-reads", "binary-integrity", "half-close", "partial-writes",
    "odd-sizes", "sendfile-large", "path-traversal", "graceful-close", "client-abort",
    "backlog", "concurrency", "close-wait", "restart", "fd-leak", "idle-blackhole",
    "slow-client-isolation", "fd-exhaustion", "sustained-load", "connection-rate",
    "concurrent-connections", "latency", "latency-distribution", "throughput",
    "client-basic", "client-partial-reads", "client-binary", "client-half-close",
    "client-short-body", "client-reset-mid-response", "client-no-answer",
    "client-accept-late", "client-large-body", "client-unix-max-path",
)

TITLES = {
    "never-started": "the server never started, or never accepted a connection",
    "no-answer": "the server accepts connections and never answers",
    "server-died": "the server's process died",
    "same-status": "every request got the same HTTP error status",
    "reset": "every connection was reset before any answer",
    "early-fin": "the server ended the stream with FIN before sending all it owed",
    "same-offset": "the stream ended at the same byte offset in several scenarios",
    "rst-after-data": "the server ended connections with RST instead of FIN",
    "basic-exchange": "basic failed, and the others failed on the same basic exchange",
    "own": "failures of this family alone",
}

# Evidence lines read when a verdict gave no structured fact; the facts a server
# printed (its stderr tail) come later in the evidence and are never read.
EVIDENCE_LINES = 12
_PEER_CLOSED = re.compile(r"peer closed (?:the connection )?(?:during round trip \d+ )?"
                          r"after (\d+) of \d+")
_RECV_TIMEOUT = re.compile(r"receive failed after (\d+) of \d+ bytes: timed out")
_RESET = re.compile(r"ECONNRESET|[Cc]onnection reset|stream ended by RST|stream end: RST")
_STATUS = re.compile(r"\b(?:answered|HTTP(?:/\d\.\d)?|[Ss]tatus) (\d{3})\b")
_OFFSET_KEYS = ("observed_bytes", "bytes_received", "received_bytes", "body_bytes_received")
FIRST_REQUEST = "did not serve a first request"
_FACT_LINE = re.compile(r"^  ([a-z][a-z0-9 ]*[a-z0-9]): (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Symptom:
    """What one broken item shows, normalised: how its stream ended and where."""

    never_started: bool = False
    dead: bool = False          # no answer at all, or the connection refused
    died: bool = False
    status: int | None = None   # an HTTP error status (4xx, 5xx)
    end: str = ""               # "FIN", "RST", "timeout" or "" (unknown)
    offset: int | None = None   # bytes received when the stream ended
    first_request: bool = False  # failed on its first, basic request
    first_seen: str = ""        # liveness: the scenario after which it was found dead
    short_path: bool = False


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _end(value: object) -> str:
    text = str(value or "").strip()
    for end in ("FIN", "RST"):
        if text.upper().startswith(end):
            return end
    return "timeout" if text.lower().startswith("timeout") else ""


def evidence_facts(head: str) -> dict[str, object]:
    """The verdict's facts as the evidence shows them ("  observed bytes: 0" lines under
    its summary): for results files older than the ``facts`` field."""
    facts: dict[str, object] = {}
    for found in _FACT_LINE.finditer(head):
        key, value = found.group(1).replace(" ", "_"), found.group(2).strip()
        facts.setdefault(key, int(value) if value.isdigit() else value)
    return facts


def symptom_of(record: dict) -> Symptom:
    """Normalise one record's facts (and, lacking them, its evidence's first lines)."""
    head = "\n".join(str(record.get("evidence") or "").splitlines()[:EVIDENCE_LINES])
    recorded = record.get("facts") if isinstance(record.get("facts"), dict) else {}
    facts = {**evidence_facts(head), **recorded}
    end = _end(facts.get("stream_end"))
    if not end and facts.get("server_rst") is True:
        end = "RST"
    offset = next((v for key in _OFFSET_KEYS if (v := _int(facts.get(key))) is not None), None)
    if not end and (found := _PEER_CLOSED.search(head)):
        end, offset = "FIN", int(found.group(1))
    if not end and (found := _RECV_TIMEOUT.search(head)):
        end, offset = "timeout", int(found.group(1))
    if not end and _RESET.search(head):
        end = "RST"
    status = _int(facts.get("status"))
    if status is None:
        texts = "\n".join([head, *(v for v in facts.values() if isinstance(v, str))])
        status = next((int(m.group(1)) for m in _STATUS.finditer(texts)
                       if 400 <= int(m.group(1)) <= 599), None)
    dead = bool(facts.get("no_answer") or facts.get("never_accepts") or facts.get("short_path")
                or (end == "timeout" and offset == 0)
                or "connection refused" in str(facts.get("connect_error") or ""))
    return Symptom(
        never_started=bool(facts.get("never_started"))
        or (record.get("outcome") == "error" and "first start failed" in head),
        dead=dead,
        died=bool(facts.get("server_exited")),
        status=status if status is not None and status >= 400 else None,
        end=end,
        offset=offset,
        first_request=FIRST_REQUEST in head,
        first_seen=str(facts.get("first_seen") or ""),
        short_path=bool(facts.get("short_path")),
    )


@dataclass
class Cause:
    """One cause of one target: the items it explains and the family to fix first."""

    cause: str
    target: str
    fix_first: str
    items: list[dict]
    detail: str = ""
    transports: list[str] = field(default_factory=list)

    @property
    def families(self) -> list[str]:
        return sorted({r["family"] for r in self.items}, key=precedence)

    @property
    def consequences(self) -> list[str]:
        return [f for f in self.families if f != self.fix_first]

    @property
    def title(self) -> str:
        return TITLES.get(self.cause, self.cause)

    def explanation(self) -> str:
        families = self.families
        count = len(self.items)
        what = (f"{count} broken item{'s' if count != 1 else ''} in {len(families)} "
                f"famil{'ies' if len(families) != 1 else 'y'}")
        text = f"{self.title}{': ' + self.detail if self.detail else ''} ({what})."
        if self.consequences:
            text += (f" Fix {self.fix_first} first; {', '.join(self.consequences)} "
                     f"failed as {'its consequence' if len(self.consequences) == 1 else 'its consequences'}.")
        return text


def precedence(family: str) -> tuple[int, str]:
    return (PRECEDENCE.index(family) if family in PRECEDENCE else len(PRECEDENCE), family)


def _first_by_precedence(items: list[dict]) -> str:
    return min((r["family"] for r in items), key=precedence)


def _fix_basic_first(items: list[dict]) -> str:
    families = {r["family"] for r in items}
    return next((f for f in ("basic", "client-basic") if f in families),
                _first_by_precedence(items))


# Each rule: (cause, what the item must show -> a key or None, minimum families, fix first,
# the detail for one key). Items of one target with the same key make one cause.
Rule = tuple[str, Callable[[Symptom], object], int, Callable[[list[dict], dict], str],
             Callable[[object], str]]


def _fix_dead(items: list[dict], symptoms: dict) -> str:
    families = {r["family"] for r in items}
    if "basic" in families:
        return "basic"
    seen = {symptoms[id(r)].first_seen for r in items} - {""}
    seen_families = {r["family"] for r in items if r["scenario"] in seen}
    return min(seen_families, key=precedence) if seen_families else _first_by_precedence(items)


RULES: list[Rule] = [
    ("never-started", lambda s: True if s.never_started else None, 1,
     lambda items, _: _fix_basic_first(items), lambda _: ""),
    ("no-answer", lambda s: True if s.dead else None, 2, _fix_dead, lambda _: ""),
    ("server-died", lambda s: True if s.died else None, 2,
     lambda items, _: _first_by_precedence(items), lambda _: ""),
    ("same-status", lambda s: s.status, 2, lambda items, _: _fix_basic_first(items),
     lambda key: f"HTTP {key}"),
    ("reset", lambda s: True if s.end == "RST" and s.offset in (0, None) else None, 2,
     lambda items, _: _fix_basic_first(items), lambda _: ""),
    ("early-fin", lambda s: True if s.end == "FIN" else None, 2,
     lambda items, _: _first_by_precedence(items), lambda _: ""),
    ("same-offset", lambda s: (s.end, s.offset) if s.end and s.offset else None, 2,
     lambda items, _: _first_by_precedence(items),
     lambda key: f"{'nothing more within the wait' if key[0] == 'timeout' else key[0]} "
                 f"after {key[1]} bytes"),
    ("rst-after-data", lambda s: True if s.end == "RST" and s.offset else None, 2,
     lambda items, _: "graceful-close" if any(r["family"] == "graceful-close" for r in items)
     else _first_by_precedence(items), lambda _: ""),
]


def _judged(record: dict) -> bool:
    """A broken item the program under test is to blame for: not the harness's trouble
    (an ``error`` without a fix hint), not a warning, not an interrupted item."""
    if record.get("outcome") not in BROKEN:
        return False
    return record.get("outcome") == "failed" or bool(record.get("hint")) or \
        "first start failed" in str(record.get("evidence") or "")


def find_causes(results: list[dict]) -> list[Cause]:
    """The causes of every broken item, per target; in each target, the cause to fix first
    first (by the precedence of its fix-first family, then the most items)."""
    by_target: dict[str, list[dict]] = {}
    for record in results:
        if isinstance(record, dict) and _judged(record) and record.get("family"):
            by_target.setdefault(str(record.get("target") or ""), []).append(record)
    causes: list[Cause] = []
    for target, records in sorted(by_target.items()):
        causes += _target_causes(target, records)
    return causes


def _target_causes(target: str, records: list[dict]) -> list[Cause]:
    symptoms = {id(r): symptom_of(r) for r in records}
    left = list(records)
    found: list[Cause] = []
    for cause, key_of, min_families, fix, detail in RULES:
        groups: dict[object, list[dict]] = {}
        for record in left:
            key = key_of(symptoms[id(record)])
            if key is not None:
                groups.setdefault(key, []).append(record)
        for key, items in groups.items():
            families = {r["family"] for r in items}
            probed = any(symptoms[id(r)].first_seen for r in items)  # liveness said so
            if len(families) < min_families and not probed:
                continue
            if cause == "no-answer" and not probed and not families & {"basic", "client-basic"}:
                continue  # timeouts while basic passed: a server that answers, slowly or not
            found.append(Cause(cause, target, fix(items, symptoms), items, detail(key)))
            left = [r for r in left if all(r is not i for i in items)]
    basic = [r for r in left if r["family"] in ("basic", "client-basic")]
    following = [r for r in left if symptoms[id(r)].first_request and r not in basic]
    if basic and following:
        items = basic + following
        found.append(Cause("basic-exchange", target, _fix_basic_first(items), items,
                           f"the others: \u201c{FIRST_REQUEST}\u201d"))
        left = [r for r in left if all(r is not i for i in items)]
    by_family: dict[str, list[dict]] = {}
    for record in left:
        by_family.setdefault(record["family"], []).append(record)
    found += [Cause("own", target, family, items) for family, items in by_family.items()]
    for cause in found:
        cause.transports = sorted({str(r.get("transport") or "") for r in cause.items})
    found.sort(key=lambda c: (precedence(c.fix_first), c.cause == "own", -len(c.items)))
    return found


def causes_document(results: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """(the results JSON's ``causes``, nodeid -> cause id) for ``results``."""
    entries, of_item = [], {}
    for number, cause in enumerate(find_causes(results), start=1):
        cause_id = f"C{number}"
        nodeids = [str(r.get("nodeid") or "") for r in cause.items]
        entries.append({
            "id": cause_id,
            "cause": cause.cause,
            "title": cause.title,
            "detail": cause.detail,
            "explanation": cause.explanation(),
            "target": cause.target,
            "transports": cause.transports,
            "fix_first": cause.fix_first,
            "consequences": cause.consequences,
            "families": cause.families,
            "items": nodeids,
        })
        of_item.update((nodeid, cause_id) for nodeid in nodeids)
    return entries, of_item
