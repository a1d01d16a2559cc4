"""The report's view model: results JSON -> what the template shows.

Pure functions, no HTML: they normalise the (possibly newer, possibly
incomplete) results records, count the verdict matrix, group failures by
family, and turn run metadata into rows. Unknown fields are ignored and
missing ones get neutral defaults, so an older or newer file of the same
schema still renders.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field

from sockspec.reports.results import ItemResult

OUTCOMES = ("failed", "error", "interrupted", "warning", "skipped", "passed")
BROKEN = ("failed", "error")
OUTCOME_LABELS = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip",
                  "interrupted": "STOPPED", "warning": "WARN"}
TRANSPORT_ORDER = ("tcp", "tcp6", "unix")

# Evidence is kept whole up to this size; beyond it, its head (what was expected
# and observed) and its tail (server facts, stderr) are kept. The results JSON
# keeps the full text.
EVIDENCE_HEAD_CHARS = 6_000
EVIDENCE_TAIL_CHARS = 10_000
# Failure entries start open when there are this many or fewer, closed beyond.
OPEN_FAILURES_LIMIT = 30


@dataclass
class Item(ItemResult):
    """One result record (the results JSON's own record type), normalised for display."""

    index: int = 0

    @property
    def anchor(self) -> str:
        return f"item-{self.index}"

    @property
    def label(self) -> str:
        return OUTCOME_LABELS[self.outcome]

    @property
    def headline(self) -> str:
        """The first non-empty line of the evidence: what went wrong, in one line."""
        for line in self.evidence.splitlines():
            if line.strip():
                return line.strip()
        return ""

    @property
    def pcap_is_local(self) -> bool:
        """Only a relative path becomes a link: the report must not point off the machine."""
        return bool(self.pcap) and ":" not in self.pcap.split("/")[0] and \
            not self.pcap.startswith(("/", "\\"))


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    return "" if value is None else str(value)


def clip_evidence(text: str) -> str:
    limit = EVIDENCE_HEAD_CHARS + EVIDENCE_TAIL_CHARS
    if len(text) <= limit:
        return text
    omitted = len(text) - limit
    return (f"{text[:EVIDENCE_HEAD_CHARS]}\n[... {omitted} characters omitted here; "
            f"the results JSON has the full text ...]\n{text[-EVIDENCE_TAIL_CHARS:]}")


def normalise_results(document: dict) -> list[Item]:
    items = []
    for index, record in enumerate(document.get("results") or []):
        if not isinstance(record, dict):
            continue
        outcome = _text(record, "outcome")
        try:
            duration = float(record.get("duration_s") or 0.0)
        except (TypeError, ValueError):
            duration = 0.0
        metrics = record.get("metrics")
        items.append(Item(
            index=index,
            nodeid=_text(record, "nodeid"),
            target=_text(record, "target") or "(no target)",
            profile=_text(record, "profile"),
            # Under toxics (sockspec.toxics) a transport's column is split by profile.
            transport=(_text(record, "transport") or "(none)") + _toxics_suffix(record),
            scenario=_text(record, "scenario") or _text(record, "nodeid"),
            family=_text(record, "family") or "(no family)",
            description=_text(record, "description"),
            # An outcome this report does not know is shown as an error, never as a pass.
            outcome=outcome if outcome in OUTCOMES else "error",
            evidence=clip_evidence(_text(record, "evidence")),
            hint=_text(record, "hint"),
            duration_s=duration,
            metrics=metrics if isinstance(metrics, dict) else {},
            reproduce=_text(record, "reproduce"),
            pcap=_text(record, "pcap"),
            packet_summary=clip_evidence(_text(record, "packet_summary")),
            kind=_text(record, "kind") or "server",
            level=_text(record, "level"),
        ))
    return items


def _toxics_suffix(record: dict) -> str:
    """"/PROFILE" for an item run under toxics ("tcp/slow-link"), else ""."""
    toxics = record.get("toxics")
    profile = toxics.get("profile") if isinstance(toxics, dict) else None
    return f"/{profile}" if isinstance(profile, str) and profile else ""


def warning_items(items: list[Item]) -> list[Item]:
    """The warnings (a SHOULD check or a default threshold missed), by family and scenario."""
    return sorted((i for i in items if i.outcome == "warning"),
                  key=lambda i: (i.family, i.scenario, i.target, i.transport, i.index))


def plural(count: int, outcome: str) -> str:
    """"1 error", "2 errors", "2 warnings"; the other outcomes are participles."""
    return f"{outcome}s" if outcome in ("error", "warning") and count != 1 else outcome


def count_outcomes(items: list[Item]) -> dict[str, int]:
    counts = Counter(item.outcome for item in items)
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES} | {"total": len(items)}


@dataclass
class Verdict:
    state: str  # "fail", "pass", "empty", "interrupted" or "incomplete"
    title: str
    detail: str
    failing_targets: list[str] = field(default_factory=list)
    ending: str = ""  # how an interrupted or incomplete run ended


def not_run_records(document: dict) -> list[dict]:
    """The selected items that never started (``not_run``, absent in older files)."""
    return [r for r in document.get("not_run") or [] if isinstance(r, dict)]


def run_verdict(items: list[Item], run: dict | None = None,
                not_run: list[dict] | None = None) -> Verdict:
    """The banner. A run that a signal stopped, or that left items unrun or unfinished,
    is INTERRUPTED or INCOMPLETE whatever its items say: never PASSED."""
    run = run if isinstance(run, dict) else {}
    not_run = not_run or []
    counts = count_outcomes(items)
    targets = sorted({item.target for item in items})
    failing = sorted({item.target for item in items if item.outcome in BROKEN})
    parts = [f"{counts[o]} {plural(counts[o], o)}" for o in OUTCOMES if counts[o]]
    detail = (f"{', '.join(parts)} \u2014 {counts['total']} items on {len(targets)} "
              f"target{'s' if len(targets) != 1 else ''}")
    never = (f"{len(not_run)} selected item{'s' if len(not_run) != 1 else ''} never ran"
             if not_run else "")
    status = str(run.get("status") or "")
    if status == "interrupted" or counts["interrupted"]:
        signal = run.get("signal")
        ending = f"Stopped by {signal}" if signal else "Stopped by a signal"
        ending += f"; {never}." if never else "."
        return Verdict("interrupted", "INTERRUPTED", detail, failing, ending)
    if status == "incomplete" or not_run:
        ending = (f"The run ended early; {never}." if never
                  else "The run ended early: some items did not finish.")
        return Verdict("incomplete", "INCOMPLETE", detail, failing, ending)
    if counts["failed"] or counts["error"]:
        return Verdict("fail", "FAILED", detail, failing)
    if counts["warning"]:
        # Only SHOULD checks or default thresholds missed: the run passed (exit 0).
        n = counts["warning"]
        return Verdict("warn", f"PASSED with {n} {plural(n, 'warning')}", detail)
    if counts["passed"]:
        return Verdict("pass", "PASSED", detail)
    return Verdict("empty", "NOTHING RAN" if not items else "ALL SKIPPED", detail)


@dataclass
class Cell:
    """One (target, transport, family) square of the verdict matrix."""

    counts: dict[str, int]
    href: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def state(self) -> str:
        """The colour of the cell: failed, error, interrupted, warning, passed, skipped, in
        that order."""
        for outcome in ("failed", "error", "interrupted", "warning", "passed", "skipped"):
            if self.counts.get(outcome):
                return outcome
        return "none"

    @property
    def text(self) -> str:
        """What the cell says, so colour is never the only signal."""
        c = self.counts
        if self.state == "none":
            return "\u2014"
        if self.state in BROKEN:
            bits = [f"\u2717{c['failed']}" if c.get("failed") else "",
                    f"!{c['error']}" if c.get("error") else ""]
            return " ".join(b for b in bits if b) + f"/{self.total}"
        if self.state == "interrupted":
            return f"\u2016{c['interrupted']}/{self.total}"
        if self.state == "warning":
            return f"\u26a0{c['warning']}/{self.total}"
        if self.state == "passed":
            return f"\u2713{c['passed']}" + (f" \u2013{c['skipped']}" if c.get("skipped") else "")
        return f"\u2013{c['skipped']}"

    @property
    def description(self) -> str:
        if not self.total:
            return "no items"
        return ", ".join(f"{n} {o}" for o, n in self.counts.items() if n) + f" of {self.total}"


@dataclass
class MatrixRow:
    target: str
    profile: str
    cells: list[Cell]
    counts: dict[str, int]

    @property
    def broken(self) -> int:
        return self.counts["failed"] + self.counts["error"]


@dataclass
class Matrix:
    families: list[str]
    transports: list[str]
    rows: list[MatrixRow]
    kind: str = "server"

    @property
    def title(self) -> str:
        return KIND_TITLES.get(self.kind, f"{self.kind.capitalize()}s under test")


KIND_TITLES = {"server": "Servers under test", "client": "Clients under test"}


def ordered_transports(names: set[str]) -> list[str]:
    known = [t for t in TRANSPORT_ORDER if t in names]
    return known + sorted(names - set(known))


def build_matrices(items: list[Item], targets: list[dict]) -> list[Matrix]:
    """One matrix per kind judged (servers, then clients): their families differ, and
    a shared table would be mostly empty cells."""
    kinds = {item.kind for item in items} | {str(t.get("kind") or "server") for t in targets}
    ordered = [k for k in KIND_TITLES if k in kinds] + sorted(kinds - set(KIND_TITLES))
    matrices = []
    for kind in ordered:
        mine = [t for t in targets if str(t.get("kind") or "server") == kind]
        matrix = build_matrix([i for i in items if i.kind == kind], mine)
        matrix.kind = kind
        if matrix.rows and matrix.families:
            matrices.append(matrix)
    return matrices


def build_matrix(items: list[Item], targets: list[dict]) -> Matrix:
    """Rows = targets, columns = families x transports, counts per outcome in each cell.

    A failing cell links to its first failure entry; other cells to the results list.
    """
    families = sorted({item.family for item in items})
    transports = ordered_transports({item.transport for item in items})
    profiles = {str(t.get("name")): str(t.get("profile", "")) for t in targets
                if isinstance(t, dict)}
    names = sorted({item.target for item in items} | set(profiles))
    by_cell: dict[tuple[str, str, str], list[Item]] = {}
    for item in items:
        by_cell.setdefault((item.target, item.family, item.transport), []).append(item)
    rows = []
    for name in names:
        cells = []
        for family in families:
            for transport in transports:
                group = by_cell.get((name, family, transport), [])
                counts = Counter(item.outcome for item in group)
                broken = [i for i in group if i.outcome in BROKEN]
                broken.sort(key=lambda i: (i.scenario, i.index))
                cell = Cell({o: counts.get(o, 0) for o in OUTCOMES})
                cell.href = f"#{broken[0].anchor}" if broken else ("#results" if group else "")
                cells.append(cell)
        mine = [item for item in items if item.target == name]
        profile = profiles.get(name) or next((i.profile for i in mine if i.profile), "")
        rows.append(MatrixRow(name, profile, cells, count_outcomes(mine)))
    return Matrix(families, transports, rows)


@dataclass
class FailureGroup:
    """The failures and errors of one family, with the family's fix hint shown once."""

    family: str
    hint: str
    items: list[Item]

    @property
    def counts(self) -> dict[str, int]:
        return count_outcomes(self.items)


def failure_groups(items: list[Item]) -> list[FailureGroup]:
    """Families with failures, most failures first; inside, by scenario then target."""
    by_family: dict[str, list[Item]] = {}
    for item in items:
        if item.outcome in BROKEN:
            by_family.setdefault(item.family, []).append(item)
    groups = []
    for family, group in by_family.items():
        group.sort(key=lambda i: (i.scenario, i.target, i.transport, i.index))
        hints = Counter(i.hint for i in group if i.hint)
        groups.append(FailureGroup(family, hints.most_common(1)[0][0] if hints else "", group))
    groups.sort(key=lambda g: (-len(g.items), g.family))
    return groups


def results_by_outcome(items: list[Item]) -> list[tuple[str, list[Item]]]:
    """The results list: one group per outcome, broken ones first."""
    return [(outcome, [i for i in items if i.outcome == outcome]) for outcome in OUTCOMES]


RUN_LABELS = {"started": "started", "hostname": "host", "kernel": "kernel", "machine": "machine",
              "cpu_count": "CPUs", "python": "Python", "sockspec_version": "sockspec",
              "workers": "workers"}


def run_metadata_rows(run: dict) -> list[tuple[str, str]]:
    """(label, value) rows for the run section; keys this report does not know are shown too."""
    run = run if isinstance(run, dict) else {}
    rows = [(label, str(run[key])) for key, label in RUN_LABELS.items()
            if run.get(key) not in (None, "")]
    argv = run.get("argv")
    if isinstance(argv, list) and argv:
        rows.append(("command line", shlex.join(str(a) for a in argv)))
    limits = run.get("rlimit_nofile")
    if isinstance(limits, dict):
        rows.append(("RLIMIT_NOFILE", f"soft {limits.get('soft')}, hard {limits.get('hard')}"))
    rows += [(key, str(value)) for key, value in run.items()
             if key not in RUN_LABELS and key not in ("argv", "rlimit_nofile", "sysctls")]
    return rows


def sysctl_rows(run: dict) -> list[tuple[str, str]]:
    sysctls = run.get("sysctls") if isinstance(run, dict) else None
    if not isinstance(sysctls, dict):
        return []
    return [(str(k), "(unreadable)" if v is None else str(v)) for k, v in sysctls.items()]


# Items listed under one root cause in the report; the others are counted (each has
# its entry among the failures anyway).
CAUSE_ITEMS_LIMIT = 12


@dataclass
class RootCause:
    """One entry of the results JSON's ``causes`` (reports/causes.py), for display."""

    number: int
    cause: str
    title: str
    detail: str
    explanation: str
    target: str
    transports: list[str]
    fix_first: str
    consequences: list[str]
    items: list[Item]

    @property
    def shared(self) -> bool:
        """A cause behind failures of several families (or of a dead server)."""
        return self.cause != "own"

    @property
    def items_shown(self) -> list[Item]:
        """The items listed under it: the first ones; the rest are counted."""
        return self.items[:CAUSE_ITEMS_LIMIT]


def root_causes(document: dict, items: list[Item]) -> list[RootCause]:
    """The document's ``causes`` (absent in older files: none), each with its items;
    empty unless one cause is shared by several families: then the section is worth it."""
    by_nodeid = {item.nodeid: item for item in items if item.nodeid}
    found = []
    for entry in document.get("causes") or []:
        if not isinstance(entry, dict):
            continue
        nodeids = [str(n) for n in entry.get("items") or []]
        consequences = entry.get("consequences")
        found.append(RootCause(
            number=len(found) + 1,
            cause=_text(entry, "cause"),
            title=_text(entry, "title") or _text(entry, "cause"),
            detail=_text(entry, "detail"),
            explanation=_text(entry, "explanation"),
            target=_text(entry, "target"),
            transports=[str(t) for t in entry.get("transports") or []],
            fix_first=_text(entry, "fix_first"),
            consequences=[str(c) for c in consequences] if isinstance(consequences, list)
            else [],
            items=[by_nodeid[n] for n in nodeids if n in by_nodeid],
        ))
    return found if any(cause.shared for cause in found) else []
