"""Comparing two results documents: verdicts that flipped, metrics that moved.

Pure functions over two ``sockspec.results/1`` documents (old, new). Items are
matched by (target, transport, scenario), which stays stable across runs even
when a node id's path changes; if a document holds the same key twice, the
first occurrence counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# How bad an outcome is: a move up this scale is a regression.
OUTCOME_RANK = {"passed": 0, "skipped": 1, "warning": 2, "failed": 3, "error": 4}
BROKEN = ("failed", "error")

# Which way is good for the metrics whose names the harness fixes.
HIGHER_IS_BETTER = ("conn_per_s", "throughput_gbps", "concurrent_connections")
LOWER_IS_BETTER_PREFIXES = ("latency_p", "latency_max", "setup_s")
# CDF points repeat what the percentiles say, fifty times over: left out of the moves.
SKIPPED_METRIC_PREFIXES = ("latency_cdf_",)

ItemKey = tuple[str, str, str]


@dataclass(frozen=True)
class Flip:
    """An item whose outcome differs between the two runs."""

    key: ItemKey
    family: str
    old: str
    new: str

    @property
    def kind(self) -> str:
        if self.new in BROKEN and OUTCOME_RANK.get(self.new, 4) > OUTCOME_RANK.get(self.old, 4):
            return "regression"
        if self.old in BROKEN and self.new == "passed":
            return "fix"
        return "change"


@dataclass(frozen=True)
class MetricMove:
    """One metric of one item measured in both runs, with a different value."""

    key: ItemKey
    metric: str
    old: float
    new: float

    @property
    def ratio(self) -> float:
        """new / old; infinite when the old value was 0."""
        if self.old == 0:
            return math.inf
        return self.new / self.old

    @property
    def magnitude(self) -> float:
        """|log(new/old)|: halving and doubling move equally far."""
        ratio = self.ratio
        if math.isinf(ratio) or ratio <= 0:
            return math.inf
        return abs(math.log(ratio))

    @property
    def direction(self) -> str:
        """"better", "worse" or "" (no known good direction for this metric)."""
        went_up = self.new > self.old
        if self.metric in HIGHER_IS_BETTER:
            return "better" if went_up else "worse"
        if self.metric.startswith(LOWER_IS_BETTER_PREFIXES):
            return "worse" if went_up else "better"
        return ""


@dataclass
class Comparison:
    flips: list[Flip] = field(default_factory=list)
    moves: list[MetricMove] = field(default_factory=list)
    added: list[ItemKey] = field(default_factory=list)
    removed: list[ItemKey] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for flip in self.flips if flip.kind == kind)


def item_key(result: dict) -> ItemKey:
    return (str(result.get("target", "")), str(result.get("transport", "")),
            str(result.get("scenario", "")))


def index_results(document: dict) -> dict[ItemKey, dict]:
    indexed: dict[ItemKey, dict] = {}
    for result in document.get("results") or []:
        if isinstance(result, dict):
            indexed.setdefault(item_key(result), result)
    return indexed


def numeric_metrics(result: dict) -> dict[str, float]:
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    return {name: float(value) for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value)}


def compare_documents(old: dict, new: dict) -> Comparison:
    """Flips (regressions first, then other changes, then fixes) and moves (largest first)."""
    old_items, new_items = index_results(old), index_results(new)
    comparison = Comparison(
        added=sorted(set(new_items) - set(old_items)),
        removed=sorted(set(old_items) - set(new_items)),
    )
    for key in sorted(set(old_items) & set(new_items)):
        before, after = old_items[key], new_items[key]
        old_outcome, new_outcome = str(before.get("outcome", "")), str(after.get("outcome", ""))
        if old_outcome != new_outcome:
            comparison.flips.append(
                Flip(key, str(after.get("family", "")), old_outcome, new_outcome))
        old_metrics, new_metrics = numeric_metrics(before), numeric_metrics(after)
        for metric in sorted(set(old_metrics) & set(new_metrics)):
            if metric.startswith(SKIPPED_METRIC_PREFIXES):
                continue
            if old_metrics[metric] != new_metrics[metric]:
                comparison.moves.append(
                    MetricMove(key, metric, old_metrics[metric], new_metrics[metric]))
    kind_order = {"regression": 0, "change": 1, "fix": 2}
    comparison.flips.sort(key=lambda flip: (kind_order[flip.kind], flip.key))
    comparison.moves.sort(key=lambda move: (-move.magnitude, move.key, move.metric))
    return comparison
