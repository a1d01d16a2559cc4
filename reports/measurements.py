"""Measurements: the numbers scenarios recorded, as tables and inline SVG charts.

Metric names follow the results JSON conventions (latency_p50_ms ...,
latency_cdf_<percentile>_ms, conn_per_s, throughput_gbps,
concurrent_connections + setup_s, accept_queue_depth). Anything else lands in
a generic table. A chart is drawn only when there is data for it, and only
numbers from the same scenario share a chart: different scenarios measure
different things.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup

from sockspec.reports.charts import (
    MAX_BARS,
    MAX_SERIES,
    Series,
    bar_chart,
    cdf_plot,
    format_number,
    percentile_plot,
    xy_chart,
)
from sockspec.reports.view import Item

LATENCY_COLUMNS = (("latency_p50_ms", "p50", 50.0), ("latency_p90_ms", "p90", 90.0),
                   ("latency_p99_ms", "p99", 99.0), ("latency_p999_ms", "p99.9", 99.9))
LATENCY_EXTRA = (("latency_max_ms", "max"), ("latency_count", "samples"))
CDF_PREFIX, CDF_SUFFIX = "latency_cdf_", "_ms"
# Bar charts are declared by each family (Family.charts, in the results document's
# "families"). A results file written before families declared them gets these.
LEGACY_BAR_METRICS = {
    "conn_per_s": ("connection rate", "conn/s"),
    "throughput_gbps": ("throughput", "Gbit/s"),
    "accept_queue_depth": ("accept-queue depth", "connections"),
}
SETUP_METRICS = ("concurrent_connections", "setup_s")
KNOWN_METRICS = ({name for name, _, _ in LATENCY_COLUMNS} | {name for name, _ in LATENCY_EXTRA}
                 | set(LEGACY_BAR_METRICS) | set(SETUP_METRICS))


@dataclass
class Chart:
    svg: Markup
    note: str = ""


@dataclass
class LatencyRow:
    item: Item
    values: list[str]


@dataclass
class MetricRow:
    item: Item
    values: list[str]


@dataclass
class FamilyMeasurements:
    """Everything measured by the scenarios of one family."""

    family: str
    latency_headers: list[str] = field(default_factory=list)
    latency_rows: list[LatencyRow] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    other_headers: list[str] = field(default_factory=list)
    other_rows: list[MetricRow] = field(default_factory=list)


def numbers(item: Item) -> dict[str, float]:
    return {name: float(value) for name, value in item.metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value)}


def cdf_points(metrics: dict[str, float]) -> list[tuple[float, float]]:
    """latency_cdf_99.9_ms = 1.2 -> (99.9, 1.2); names that do not parse are ignored."""
    points = []
    for name, value in metrics.items():
        if name.startswith(CDF_PREFIX) and name.endswith(CDF_SUFFIX):
            try:
                percentile = float(name[len(CDF_PREFIX):-len(CDF_SUFFIX)])
            except ValueError:
                continue
            if 0 <= percentile <= 100:
                points.append((percentile, value))
    return sorted(points)


def series_label(item: Item) -> str:
    return f"{item.target} \u00b7 {item.transport}"


def _by_scenario(items: list[Item]) -> dict[str, list[Item]]:
    grouped: dict[str, list[Item]] = {}
    for item in items:
        grouped.setdefault(item.scenario, []).append(item)
    return grouped


def _limit_note(shown: int, total: int, what: str) -> str:
    if total <= shown:
        return ""
    return f"The chart shows {shown} of {total} {what}; the tables below list all values."


def latency_charts(scenario: str, items: list[Item]) -> list[Chart]:
    """A percentile plot per scenario, plus a CDF when the items recorded CDF points."""
    series, maxima, cdfs, worst = [], {}, [], {}
    for item in items:
        metrics = numbers(item)
        points = [(p, metrics[name]) for name, _, p in LATENCY_COLUMNS if name in metrics]
        cdf = cdf_points(metrics)
        merged = dict(points) | dict(cdf)
        if not merged:
            continue
        label = series_label(item)
        series.append(Series(label, tuple(sorted(merged.items()))))
        worst[label] = metrics.get("latency_p99_ms", max(merged.values()))
        if "latency_max_ms" in metrics:
            maxima[label] = metrics["latency_max_ms"]
        if cdf:
            cdfs.append(Series(label, tuple(cdf)))
    if not series:
        return []
    # With more lines than markers, keep the slowest: they are the ones to look at.
    slowest = sorted(series, key=lambda s: -worst[s.label])[:MAX_SERIES]
    note = _limit_note(len(slowest), len(series), "series with the highest p99")
    charts = [Chart(percentile_plot(slowest, title=f"{scenario}: latency by percentile",
                                    with_max=maxima), note)]
    if cdfs:
        # Same series, same order, so each keeps its colour and marker across both charts.
        by_label = {c.label: c for c in cdfs}
        cdf_shown = [by_label[s.label] for s in slowest if s.label in by_label]
        charts.append(Chart(cdf_plot(cdf_shown, title=f"{scenario}: latency CDF"),
                            _limit_note(len(cdf_shown), len(cdfs), "series")))
    return charts


def bar_charts(scenario: str, items: list[Item],
               bars: dict[str, tuple[str, str]] | None = None) -> list[Chart]:
    """One bar chart per declared metric (``bars``: metric -> (what, unit))."""
    charts = []
    for metric, (what, unit) in (LEGACY_BAR_METRICS if bars is None else bars).items():
        bars = [(series_label(i), numbers(i)[metric]) for i in items if metric in numbers(i)]
        if bars:
            charts.append(Chart(bar_chart(bars, title=f"{scenario}: {what}", unit=unit),
                                _limit_note(min(len(bars), MAX_BARS), len(bars), "bars")))
    return charts


def setup_charts(family: str, items: list[Item]) -> list[Chart]:
    """Setup time against connection count: curves when a target was measured at several
    counts (several scenarios of the family), bars otherwise."""
    measured = [i for i in items if all(m in numbers(i) for m in SETUP_METRICS)]
    if not measured:
        return []
    curves: dict[str, list[tuple[float, float]]] = {}
    for item in measured:
        metrics = numbers(item)
        curves.setdefault(series_label(item), []).append(
            (metrics["concurrent_connections"], metrics["setup_s"]))
    if any(len({x for x, _ in points}) > 1 for points in curves.values()):
        series = [Series(label, tuple(sorted(points))) for label, points in curves.items()]
        # Slowest at the largest count first: with too many lines, those are the ones kept.
        series.sort(key=lambda s: (-s.points[-1][0], -s.points[-1][1]))
        return [Chart(xy_chart(series[:MAX_SERIES], title=f"{family}: connection setup time",
                               x_label="concurrent connections", y_label="setup time (s)"),
                      _limit_note(min(len(series), MAX_SERIES), len(series), "series"))]
    bars = [(f"{series_label(i)} ({format_number(numbers(i)['concurrent_connections'])} conns)",
             numbers(i)["setup_s"]) for i in measured]
    return [Chart(bar_chart(bars, title=f"{family}: time to set up concurrent connections",
                            unit="s"))]


def _table(group: list[Item], names: list[str], row_type: type) -> list:
    """Rows of items that have any of these metrics; a missing value shows as a dash."""
    rows = []
    for item in group:
        metrics = numbers(item)
        if any(n in item.metrics for n in names):
            rows.append(row_type(item, [
                format_number(metrics[n]) if n in metrics else str(item.metrics.get(n, "\u2014"))
                for n in names]))
    return rows


def declared_bars(families: object) -> dict[str, dict[str, tuple[str, str]]] | None:
    """The results document's "families" -> family -> metric -> (what, unit); None when
    the document has no such section (an older file: the legacy table applies)."""
    if not isinstance(families, dict):
        return None
    declared: dict[str, dict[str, tuple[str, str]]] = {}
    for name, info in families.items():
        charts = info.get("charts") if isinstance(info, dict) else None
        for chart in charts if isinstance(charts, list) else []:
            if isinstance(chart, dict) and all(isinstance(chart.get(k), str)
                                               for k in ("metric", "what", "unit")):
                declared.setdefault(name, {})[chart["metric"]] = (chart["what"], chart["unit"])
    return declared


def family_measurements(items: list[Item], families: object = None) -> list[FamilyMeasurements]:
    """One block per family that recorded any metric, in family order. ``families``: the
    document's "families" section (the bar charts each family declares)."""
    declared = declared_bars(families)
    families: dict[str, list[Item]] = {}
    for item in items:
        if item.metrics:
            families.setdefault(item.family, []).append(item)
    columns = [(n, label) for n, label, _ in LATENCY_COLUMNS] + list(LATENCY_EXTRA)
    blocks = []
    for family in sorted(families):
        group = sorted(families[family], key=lambda i: (i.scenario, i.target, i.transport))
        block = FamilyMeasurements(family)
        present = [(n, label) for n, label in columns if any(n in numbers(i) for i in group)]
        block.latency_headers = [label for _, label in present]
        block.latency_rows = _table(group, [n for n, _ in present], LatencyRow)
        for scenario, scenario_items in _by_scenario(group).items():
            block.charts += latency_charts(scenario, scenario_items)
            bars = None if declared is None else declared.get(family, {})
            block.charts += bar_charts(scenario, scenario_items, bars)
        block.charts += setup_charts(family, group)
        # Every other value goes to a table too, so nothing a chart leaves out is lost.
        in_latency_table = {n for n, _ in present}
        block.other_headers = sorted({
            name for i in group for name in i.metrics
            if not ((name in in_latency_table or name.startswith(CDF_PREFIX))
                    and name in numbers(i))})
        block.other_rows = _table(group, block.other_headers, MetricRow)
        blocks.append(block)
    return blocks
