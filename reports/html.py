"""The HTML report: one self-contained file from one results JSON (or two, compared).

Reads only the results JSON (never the harness). The file carries its CSS, its
small script and its SVG charts inline, and a Content-Security-Policy that lets
it load nothing at all, so it opens the same from disk, from a mail
attachment, or printed. Every string from the results file goes through
Jinja2's autoescaping: evidence quotes what servers sent, and a hostile
server's bytes must stay text.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from sockspec.reports.bench import bench_context, load_bench
from sockspec.reports.charts import format_number
from sockspec.reports.compare import Comparison, compare_documents
from sockspec.reports.measurements import family_measurements
from sockspec.reports.outputs import write_output
from sockspec.reports.results import load_results
from sockspec.reports.view import (
    BROKEN,
    OPEN_FAILURES_LIMIT,
    build_matrices,
    count_outcomes,
    failure_groups,
    normalise_results,
    not_run_records,
    plural,
    results_by_outcome,
    root_causes,
    run_metadata_rows,
    run_verdict,
    sysctl_rows,
    warning_items,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
# Rows of the comparison tables beyond which the rest is only counted.
COMPARISON_ROWS_LIMIT = 300


def format_seconds(value: float) -> str:
    if value < 0.001:
        return f"{value * 1e6:.0f} \u00b5s" if value else "0 s"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s" if value < 60 else f"{value / 60:.1f} min"


def format_ratio(ratio: float) -> str:
    if ratio == float("inf"):
        return "from 0"
    return f"\u00d7{format_number(ratio)}"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = format_number
    environment.filters["seconds"] = format_seconds
    environment.filters["ratio"] = format_ratio
    environment.globals["plural"] = plural
    return environment


def _inline_asset(name: str) -> str:
    return (TEMPLATE_DIR / name).read_text(encoding="utf-8")


def _script_hash(script: str) -> str:
    """CSP hash of the one inline script: any other script, injected or not, will not run."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def comparison_context(baseline: dict, document: dict, anchors: dict) -> dict:
    comparison: Comparison = compare_documents(baseline, document)
    return {
        "data": comparison,
        "flips": comparison.flips[:COMPARISON_ROWS_LIMIT],
        "moves": comparison.moves[:COMPARISON_ROWS_LIMIT],
        "added": comparison.added[:COMPARISON_ROWS_LIMIT],
        "removed": comparison.removed[:COMPARISON_ROWS_LIMIT],
        "limit": COMPARISON_ROWS_LIMIT,
        "old_counts": count_outcomes(normalise_results(baseline)),
        "old_run": run_metadata_rows(baseline.get("run") or {}),
        "anchors": anchors,
    }


def render_html(document: dict, baseline: dict | None = None, bench: dict | None = None) -> str:
    """The report as a string; with ``baseline`` (the older run) it gains a comparison,
    with ``bench`` (a sockspec.bench/1 document) a benchmark section."""
    items = normalise_results(document)
    run = document.get("run") if isinstance(document.get("run"), dict) else {}
    targets = [t for t in document.get("targets") or [] if isinstance(t, dict)]
    groups = failure_groups(items)
    broken_count = sum(len(g.items) for g in groups)
    anchors = {(i.target, i.transport, i.scenario): i.anchor for i in items if i.outcome in BROKEN}
    script = _inline_asset("report.js")
    context = {
        "schema": document.get("schema", ""),
        "run": run,
        "items": items,
        "counts": count_outcomes(items),
        "verdict": run_verdict(items, run, not_run_records(document)),
        "not_run": not_run_records(document),
        "matrices": build_matrices(items, targets),
        "failure_groups": groups,
        "causes": root_causes(document, items),
        "warnings": warning_items(items),
        "failures_open": broken_count <= OPEN_FAILURES_LIMIT,
        "results_groups": results_by_outcome(items),
        "measurements": family_measurements(items, document.get("families")),
        "run_rows": run_metadata_rows(run),
        "sysctls": sysctl_rows(run),
        "targets": targets,
        "comparison": comparison_context(baseline, document, anchors) if baseline else None,
        "bench": bench_context(bench) if bench else None,
        "style": Markup(_inline_asset("report.css")),
        "script": Markup(script),
        "script_hash": _script_hash(script),
    }
    return _environment().get_template(TEMPLATE).render(context)


def write_html_report(document: dict, path: str | Path, baseline: dict | None = None,
                      bench: dict | None = None) -> None:
    """Write the report for ``document`` as sockspec.reports.outputs does: atomically over a
    regular file or a new path (a reader never sees half a file), through a symlink,
    straight into a device or FIFO. OutputError (one line) when it fails."""
    write_output(path, render_html(document, baseline, bench), label="HTML report")


def write_report_files(paths: list[str], output: str, bench_path: str | None = None) -> None:
    """CLI entry: one results file -> its report; two (old, new) -> report of new vs old;
    ``bench_path``: a benchmark file (sockspec bench) shown in its own section.

    Raises ResultsFormatError (one-line message) for a file that is not results JSON.
    """
    if len(paths) not in (1, 2):
        raise ValueError("a report takes one results file, or two (old new) to compare")
    documents = [load_results(path) for path in paths]
    baseline = documents[0] if len(documents) == 2 else None
    bench = load_bench(bench_path) if bench_path else None
    write_html_report(documents[-1], output, baseline=baseline, bench=bench)
