"""The results JSON (schema ``sockspec.results/1``): collection, writing, reading.

A public contract (README, "Results JSON"): consumers, the HTML report
included, read only this file. Changes must stay compatible: add fields,
never rename or remove them.

Knows nothing of the harness: records arrive as plain dicts, one per pytest
phase report, and are merged here into one record per item.
"""

from __future__ import annotations

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

SCHEMA = "sockspec.results/1"
OUTCOMES = ("passed", "failed", "error", "skipped")

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
    outcome: str = "passed"
    evidence: str = ""
    hint: str = ""
    duration_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    reproduce: str = ""
    pcap: str = ""             # capture file, relative to the results file's directory
    packet_summary: str = ""   # who sent FIN/RST, retransmissions, zero windows, gaps
    kind: str = "server"       # what was judged: a "server" or a "client" under test

    # The fields a phase's record fixes once per item (the first record sets them).
    STATIC = ("target", "profile", "transport", "scenario", "family", "description", "hint",
              "reproduce", "kind")

    def phase_record(self) -> dict:
        """This record as one pytest phase sends it to the controller (JSON-safe)."""
        record = asdict(self)
        del record["outcome"], record["duration_s"]  # the controller's to decide
        return record


class ResultCollector:
    """Merges per-phase records (setup, call, teardown) into one ItemResult each."""

    def __init__(self) -> None:
        self._items: dict[str, ItemResult] = {}
        # family name -> what the family declares for the report ("charts")
        self.families: dict[str, dict] = {}

    def add_phase(self, nodeid: str, when: str, outcome: str, duration: float, record: dict) -> None:
        item = self._items.get(nodeid)
        if item is None:
            static = {k: record.get(k) or "" for k in ItemResult.STATIC}
            static["kind"] = static["kind"] or "server"
            item = self._items[nodeid] = ItemResult(nodeid=nodeid, **static)
        if record.get("family_charts") and item.family:
            self.families.setdefault(item.family, {})["charts"] = record["family_charts"]
        item.duration_s = round(item.duration_s + duration, 6)
        item.metrics.update(record.get("metrics") or {})
        for key in ("pcap", "packet_summary"):
            if record.get(key):
                setattr(item, key, record[key])
        if "evidence" not in record:  # a record of extra facts only, not of a phase
            return
        evidence = record.get("evidence") or ""
        new_outcome = _phase_outcome(when, outcome)
        if new_outcome is not None and _rank(new_outcome) >= _rank(item.outcome):
            item.outcome = new_outcome
        if evidence:  # also from a passed teardown: e.g. "after stop: port still held"
            item.evidence = f"{item.evidence}\n{evidence}".strip()

    def items(self) -> list[ItemResult]:
        return list(self._items.values())


def _phase_outcome(when: str, outcome: str) -> str | None:
    """pytest phase outcome -> sockspec outcome (None: nothing to say)."""
    if outcome == "skipped":
        return "skipped"
    if outcome == "failed":
        return "failed" if when == "call" else "error"
    return "passed" if when == "call" else None


def _rank(outcome: str) -> int:
    return {"passed": 0, "skipped": 1, "failed": 2, "error": 3}[outcome]


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


def build_document(run: dict, items: list[ItemResult], targets: list[dict],
                   families: dict[str, dict] | None = None) -> dict:
    """The results document. ``families``: what families declare for the report (their
    bar charts: ``{"throughput": {"charts": [{"metric", "what", "unit"}]}}``)."""
    ordered = sorted(items, key=lambda i: (i.target, i.transport, i.family, i.scenario))
    document = {
        "schema": SCHEMA,
        "run": run,
        "summary": summarize(ordered),
        "targets": targets,
        "per_target": per_target_totals(ordered),
        "results": [asdict(item) for item in ordered],
    }
    if families:
        document["families"] = {name: families[name] for name in sorted(families)}
    return document


def write_results(path: str | Path, document: dict) -> None:
    """Write atomically, so a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)


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
