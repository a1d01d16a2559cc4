"""The benchmark file (schema ``sockspec.bench/1``) as the HTML report shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sockspec.reports.results import ResultsFormatError

BENCH_SCHEMA = "sockspec.bench/1"


@dataclass(frozen=True)
class BenchRow:
    name: str
    sockspec: str
    baseline: str
    unit: str
    ratio: str
    goal: str
    met: bool | None
    baseline_tool: str
    note: str


def load_bench(path: str | Path) -> dict:
    """Read a benchmark file, checking its schema; ResultsFormatError (one line) if not."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsFormatError(f"{path}: no such benchmark file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(f"{path}: not a readable JSON file: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != BENCH_SCHEMA:
        raise ResultsFormatError(f"{path}: not a sockspec benchmark file ({BENCH_SCHEMA})")
    if not isinstance(document.get("comparisons"), list):
        raise ResultsFormatError(f"{path}: 'comparisons' must be a list")
    return document


def bench_rows(document: dict) -> list[BenchRow]:
    rows = []
    for entry in document.get("comparisons", []):
        if not isinstance(entry, dict):
            continue
        met = entry.get("met")
        rows.append(BenchRow(
            name=str(entry.get("name", "")),
            sockspec=_number(entry.get("sockspec")),
            baseline=_number(entry.get("baseline")),
            unit=str(entry.get("unit", "")),
            ratio=_number(entry.get("ratio"), digits=3),
            goal=str(entry.get("goal", "")),
            met=met if isinstance(met, bool) else None,
            baseline_tool=str(entry.get("baseline_tool", "")),
            note=str(entry.get("note", "")),
        ))
    return rows


def bench_context(document: dict) -> dict:
    machine = document.get("machine") if isinstance(document.get("machine"), dict) else {}
    return {"date": str(document.get("date", "")), "runs": document.get("runs", ""),
            "machine": machine, "rows": bench_rows(document)}


def _number(value: object, digits: int = 4) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}g}"
    return "-" if value is None else str(value)
