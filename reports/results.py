"""The results JSON (schema ``sockspec.results/1``): collection, writing, reading.

A public contract (README, "Results JSON"): consumers, the HTML report
included, read only this file. Changes must stay compatible: add fields,
never rename or remove them.

Knows nothing of the harness: records arrive as plain dicts, one per pytest
phase report, and are merged here into one record per item.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sockspec.reports.causes import causes_document
from sockspec.reports.outputs import write_output

SCHEMA = "sockspec.results/1"
# "interrupted" was added to schema 1 compatibly: an item that was running when a
# signal (SIGINT, SIGTERM, SIGHUP) stopped the run. It is never a pass.
# "warning" was added the same way: a SHOULD check (or a default threshold of a
# measurement) missed; the run still exits 0 (a failure under --strict for SHOULD).
OUTCOMES = ("passed", "failed", "error", "skipped", "interrupted", "warning")
# run.status: every selected item finished; a signal stopped the run; or items
# were left unfinished or never ran for another reason (a crashed worker, -x).
RUN_STATES = ("complete", "interrupted", "incomplete")

# Sysctls that change what a socket program observes: accept-queue depth,
# ephemeral ports, SYN retry timing, TIME_WAIT reuse.
SOCKET_SYSCTLS = (
    "net/core/somaxconn",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/tcp_syn_linear_timeouts",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/tcp_abort_on_overflow",
)


class ResultsFormatError(Exception):
    """A file that is not a readable sockspec results JSON."""


@dataclass
class ItemResult:
    """One (scenario x target x transport) outcome."""

    nodeid: str
    target: str
    profile: str
    transport: str
    scenario: str
    family: str
    description: str = ""
    # Never "passed" by default: the collector sets "passed" only from a call
    # phase that ran to its end and passed.
    outcome: str = "error"
    evidence: str = ""
    hint: str = ""
    duration_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    reproduce: str = ""
    pcap: str = ""             # capture file, relative to the results file's directory
    packet_summary: str = ""   # who sent FIN/RST, retransmissions, zero windows, gaps
    kind: str = "server"       # what was judged: a "server" or a "client" under test
    # The level of the check that failed or warned; of the scenario when none did:
    # "MUST", "SHOULD" or "INFO" (a default threshold). "" when the item never ran.
    level: str = ""
    # The thresholds applied to a measurement's figures: metric, op, limit, observed,
    # unit, met, whose ("default" or "user"), source, level.
    thresholds: list[dict] = field(default_factory=list)
    # Structured facts of a broken item (harness/cause_facts.py: stream_end, status,
    # no_answer, short_path, ...) and the id of its root cause in "causes" ("" if none).
    facts: dict[str, object] = field(default_factory=dict)
    cause: str = ""
    # The toxics between the harness and the program (sockspec.toxics): profile, spec,
    # seed and each toxic's settings; {} when none.
    toxics: dict[str, object] = field(default_factory=dict)

    def phase_record(self) -> dict:
        """This record as one pytest phase sends it to the controller (JSON-safe)."""
        record = asdict(self)
        del record["outcome"], record["duration_s"]  # the controller's to decide
        return record


STATIC_FIELDS = ("target", "profile", "transport", "scenario", "family", "description",
                 "hint", "reproduce")
# A phase record may also say (both optional, both added by the harness plugin):
#   "harness_error": true   -- the failure is the harness's own trouble: "error", no hint
#   "interrupted": "SIGTERM" -- a signal arrived while this item ran
#   "warning": true          -- the call phase "passed" for pytest, with a SHOULD (or a
#                               default threshold) missed: the item is a "warning"


@dataclass
class _Progress:
    """What is known of one item so far: its record and the phases pytest reported."""

    item: ItemResult
    started: bool = False
    phases: dict[str, str] = field(default_factory=dict)   # when -> pytest outcome
    harness_error: bool = False
    interrupted: str = ""                                   # the signal's name
    crash: str = ""                                         # what killed its worker
    crash_outcome: str = "error"
    warning: bool = False                                   # its call phase warned


class ResultCollector:
    """Merges per-phase records (setup, call, teardown) into one ItemResult each.

    An item is ``passed`` only when its call phase was reported and passed:
    a setup report alone, or a start with no report at all, is an item that
    did not finish (``interrupted`` when the run was stopped by a signal,
    ``error`` otherwise).
    """

    def __init__(self) -> None:
        self._items: dict[str, _Progress] = {}
        # family name -> what the family declares for the report ("charts")
        self.families: dict[str, dict] = {}

    def _progress(self, nodeid: str, record: dict) -> _Progress:
        progress = self._items.get(nodeid)
        if progress is None:
            static = {k: record.get(k, "") for k in STATIC_FIELDS}
            progress = self._items[nodeid] = _Progress(ItemResult(nodeid=nodeid, **static))
            if record.get("kind"):
                progress.item.kind = record["kind"]
        return progress

    def start(self, nodeid: str, record: dict | None = None) -> None:
        """The item began (pytest_runtest_logstart); ``record``: its static fields."""
        self._progress(nodeid, record or {}).started = True

    def started(self) -> set[str]:
        return set(self._items)

    def add_phase(self, nodeid: str, when: str, outcome: str, duration: float, record: dict) -> None:
        progress = self._progress(nodeid, record)
        item = progress.item
        for key in STATIC_FIELDS:  # an item first seen by its start may lack some
            if not getattr(item, key) and record.get(key):
                setattr(item, key, record[key])
        if record.get("family_charts") and item.family:
            self.families.setdefault(item.family, {})["charts"] = record["family_charts"]
        item.duration_s = round(item.duration_s + duration, 6)
        item.metrics.update(record.get("metrics") or {})
        item.facts.update(record.get("facts") or {})
        for key in ("pcap", "packet_summary", "kind", "level", "thresholds", "toxics"):
            if record.get(key):
                setattr(item, key, record[key])
        if record.get("warning") and when == "call":
            progress.warning = True
        if "evidence" not in record:  # a record of extra facts only, not of a phase
            return
        if progress.phases.get(when) != "failed":  # extra facts never undo a failure
            progress.phases[when] = outcome
        if record.get("harness_error"):
            progress.harness_error = True
        if record.get("interrupted") and when != "teardown":
            progress.interrupted = str(record["interrupted"])
        evidence = record.get("evidence") or ""
        if evidence:  # also from a passed teardown: e.g. "after stop: port still held"
            item.evidence = f"{item.evidence}\n{evidence}".strip()

    def add_crash(self, nodeid: str, text: str, record: dict | None = None,
                  outcome: str = "error") -> None:
        """The process running the item died (``error``) or was stopped (``interrupted``)."""
        progress = self._progress(nodeid, record or {})
        progress.started = True
        progress.crash = text
        progress.crash_outcome = outcome

    def unfinished(self) -> list[str]:
        """Items that began but whose outcome no phase report settled."""
        return [nodeid for nodeid, p in self._items.items() if _settled(p) is None]

    def items(self, interrupted_by: str | None = None) -> list[ItemResult]:
        """The items so far; ``interrupted_by``: the signal that stopped the run, if any."""
        return [_resolve(p, interrupted_by) for p in self._items.values()]


def _phase_outcome(when: str, outcome: str, harness_error: bool) -> str | None:
    """pytest phase outcome -> sockspec outcome (None: nothing to say)."""
    if outcome == "skipped":
        return "skipped"
    if outcome == "failed":
        return "failed" if when == "call" and not harness_error else "error"
    return "passed" if when == "call" else None


def _rank(outcome: str) -> int:
    return {"passed": 0, "skipped": 1, "warning": 2, "failed": 3, "error": 4}[outcome]


def _settled(progress: _Progress) -> str | None:
    """The outcome the reported phases settle, or None when the item did not finish."""
    if progress.crash:
        return progress.crash_outcome
    if progress.interrupted:
        return "interrupted"
    found = [o for when, outcome in progress.phases.items()
             if (o := _phase_outcome(when, outcome, progress.harness_error)) is not None]
    if not found:
        return None  # a passed setup alone, or no report: it never reached its end
    if "call" not in progress.phases and "error" not in found and "skipped" not in found:
        return None
    if progress.warning and progress.phases.get("call") == "passed":
        found.append("warning")  # a passed call that missed a SHOULD: worse than passed
    return max(found, key=_rank)


def _resolve(progress: _Progress, interrupted_by: str | None) -> ItemResult:
    item = dataclasses.replace(progress.item, metrics=dict(progress.item.metrics),
                               facts=dict(progress.item.facts))
    settled = _settled(progress)
    note = ""
    if settled is None:
        if interrupted_by:
            settled = "interrupted"
            note = f"interrupted by {interrupted_by} before the scenario finished"
        else:
            settled = "error"
            note = ("did not finish: the harness stopped before this scenario's verdict "
                    "was reported")
    elif progress.crash:
        note = progress.crash
    elif settled == "interrupted":
        note = f"interrupted by {progress.interrupted} while the scenario ran"
    if note:
        item.evidence = f"{note}\n{item.evidence}".strip()
    item.outcome = settled
    if progress.harness_error or settled == "interrupted":
        item.hint = ""  # the program under test is not to blame
    return item


def read_sysctl(name: str) -> str | None:
    try:
        return " ".join(Path("/proc/sys", name).read_text().split())
    except OSError:
        return None


def collect_run_metadata(argv: list[str], version: str) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hostname": socket.gethostname(),
        "kernel": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "sockspec_version": version,
        "argv": list(argv),
        "sysctls": {name.replace("/", "."): read_sysctl(name) for name in SOCKET_SYSCTLS},
        "rlimit_nofile": {"soft": soft, "hard": hard},
    }


def summarize(items: list[ItemResult]) -> dict[str, int]:
    counts = Counter(item.outcome for item in items)
    summary = {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}
    summary["total"] = len(items)
    return summary


def per_target_totals(items: list[ItemResult]) -> dict[str, dict[str, int]]:
    by_target: dict[str, list[ItemResult]] = {}
    for item in items:
        by_target.setdefault(item.target, []).append(item)
    return {name: summarize(group) for name, group in sorted(by_target.items())}


def run_status(items: list[ItemResult], not_run: list[dict], signal: str | None = None,
               unfinished: bool = False) -> str:
    """One of RUN_STATES: a signal or an interrupted item beats items left undone."""
    if signal or any(item.outcome == "interrupted" for item in items):
        return "interrupted"
    return "incomplete" if not_run or unfinished else "complete"


def build_document(run: dict, items: list[ItemResult], targets: list[dict],
                   not_run: list[dict] | None = None, *, signal: str | None = None,
                   unfinished: bool = False, families: dict[str, dict] | None = None) -> dict:
    """The results document. ``not_run``: selected items that never started (records
    with nodeid, target, transport, scenario, family, kind); ``signal``: the name of
    the signal that stopped the run; ``unfinished``: something ended the run early
    (a crashed worker, an internal error) even if every item has an outcome;
    ``families``: what families declare for the report (their bar charts:
    ``{"throughput": {"charts": [{"metric", "what", "unit"}]}}``)."""
    ordered = sorted(items, key=lambda i: (i.target, i.transport, i.family, i.scenario))
    not_run = sorted(not_run or [], key=lambda r: (str(r.get("target", "")),
                                                   str(r.get("transport", "")),
                                                   str(r.get("nodeid", ""))))
    run = dict(run, status=run_status(ordered, not_run, signal, unfinished), signal=signal)
    results = [asdict(item) for item in ordered]
    # Failures across families that share one cause, grouped (reports/causes.py).
    causes, cause_of = causes_document(results)
    for record in results:
        record["cause"] = cause_of.get(record["nodeid"], "")
    document = {
        "schema": SCHEMA,
        "run": run,
        "summary": summarize(ordered),
        "targets": targets,
        "per_target": per_target_totals(ordered),
        "results": results,
        "not_run": not_run,
        "causes": causes,
    }
    if families:
        document["families"] = {name: families[name] for name in sorted(families)}
    return document


def write_results(path: str | Path, document: dict) -> None:
    """Write as sockspec.reports.outputs does: atomically over a regular file or a new path (a
    reader never sees half a file), through a symlink, straight into a device or FIFO.
    OutputError (one line) when it fails; no temporary file is left."""
    write_output(path, json.dumps(document, indent=2, sort_keys=False) + "\n",
                 label="results JSON")


def load_results(path: str | Path) -> dict:
    """Read a results file, checking the schema; raise ResultsFormatError."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsFormatError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(f"{path}: not a readable JSON file: {exc}") from None
    if not isinstance(document, dict) or not str(document.get("schema", "")).startswith(
        "sockspec.results/"
    ):
        raise ResultsFormatError(f"{path}: not a sockspec results file (no 'schema' field)")
    if document["schema"] != SCHEMA:
        raise ResultsFormatError(f"{path}: schema {document['schema']!r}, this sockspec reads {SCHEMA}")
    if not isinstance(document.get("results"), list):
        raise ResultsFormatError(f"{path}: 'results' must be a list")
    return document
