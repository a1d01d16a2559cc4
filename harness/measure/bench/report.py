"""Benchmark bookkeeping (pure): goals, comparisons of medians, the JSON document, the table.

A comparison first runs each side once untimed (a cold server, page cache or
allocator would otherwise fall on whichever side goes first), then alternates
sockspec and its baseline run by run, so a slow drift of the shared machine hits
both sides, and compares the medians. The ratio is
always sockspec / baseline; a Goal says which way is better and where the line is.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SCHEMA = "sockspec.bench/1"


@dataclass(frozen=True)
class Goal:
    better: str        # "lower" (times) or "higher" (rates)
    ratio: float       # the ratio sockspec/baseline must not pass

    def met(self, ratio: float) -> bool:
        return ratio <= self.ratio if self.better == "lower" else ratio >= self.ratio

    def text(self) -> str:
        return f"{'<=' if self.better == 'lower' else '>='} {self.ratio:g}x"


@dataclass
class Comparison:
    name: str
    unit: str
    baseline_tool: str
    goal: Goal
    sockspec_runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    note: str = ""
    warmup_runs: dict[str, list[float]] = field(default_factory=dict)  # discarded

    @property
    def sockspec(self) -> float:
        return statistics.median(self.sockspec_runs)

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_runs)

    @property
    def ratio(self) -> float:
        return self.sockspec / self.baseline if self.baseline else float("inf")

    def record(self) -> dict:
        return {"name": self.name, "sockspec": round(self.sockspec, 4),
                "baseline": round(self.baseline, 4), "unit": self.unit,
                "ratio": round(self.ratio, 4), "goal": self.goal.text(),
                "met": self.goal.met(self.ratio), "better": self.goal.better,
                "baseline_tool": self.baseline_tool, "note": self.note,
                "runs": {"sockspec": [round(v, 4) for v in self.sockspec_runs],
                         "baseline": [round(v, 4) for v in self.baseline_runs]},
                "warmup": {side: [round(v, 4) for v in values]
                           for side, values in self.warmup_runs.items()}}


def compare(name: str, unit: str, tool: str, goal: Goal, runs: int,
            sockspec: Callable[[], float], baseline: Callable[[], float],
            note: str = "", warmup: int = 1) -> Comparison:
    """Run each side ``warmup`` times (discarded), then alternate them ``runs`` times."""
    comparison = Comparison(name, unit, tool, goal, note=note,
                            warmup_runs={"sockspec": [], "baseline": []})
    for _ in range(warmup):
        comparison.warmup_runs["sockspec"].append(sockspec())
        comparison.warmup_runs["baseline"].append(baseline())
    for run in range(runs):
        pair = [(comparison.sockspec_runs, sockspec), (comparison.baseline_runs, baseline)]
        for samples, measure in (pair if run % 2 == 0 else pair[::-1]):
            samples.append(measure())
    return comparison


def document(comparisons: list[Comparison], runs: int, skipped: dict[str, str]) -> dict:
    return {
        "schema": SCHEMA,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(),
                    "loadavg_end": open("/proc/loadavg").read().split()[:3]},
        "runs": runs,
        "comparisons": [c.record() for c in comparisons],
        "skipped": skipped,
    }


def table(doc: dict) -> list[str]:
    lines = [f"{'comparison':<42} {'sockspec':>11} {'baseline':>11} {'unit':<6} "
             f"{'ratio':>6} {'goal':>8}  met  baseline"]
    for c in doc["comparisons"]:
        lines.append(f"{c['name']:<42} {c['sockspec']:>11.4g} {c['baseline']:>11.4g} "
                     f"{c['unit']:<6} {c['ratio']:>6.3f} {c['goal']:>8}  "
                     f"{'yes' if c['met'] else 'NO ':<4} {c['baseline_tool']}")
    for name, reason in doc["skipped"].items():
        lines.append(f"{name:<42} skipped: {reason}")
    return lines
