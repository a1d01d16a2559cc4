"""Thresholds of the measurement families: figures are the server's, limits the user's.

A measurement family (latency, connection-rate, ...) reports figures. Each
figure a user may judge is a ``Measure`` declared on its Family (sockspec.catalogue),
named ``<family>.<figure>`` (``latency.p50_ms``, ``connection-rate.conn_per_s``).
Some have a documented default threshold; a miss of a default is a warning
(level INFO: a capacity figure, not a broken behaviour). A threshold the user
gives, per target in the targets file (``[server.thresholds]``) or for the whole
run on the command line (``--threshold latency.p99_ms<=5``), replaces the default
and its miss is a failure (level MUST).

Pure parsing and comparison; no sockets, no pytest.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from sockspec.errors import TargetConfigError, UsageError

OPERATORS = ("<=", ">=", "<", ">")
# Where a threshold came from: the family's documented default, or the user.
DEFAULT = "default"
EXPRESSION = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(<=|>=|<|>)\s*([^\s].*?)\s*$")


@dataclass(frozen=True)
class Measure:
    """A figure a measurement family reports, which a threshold may judge.

    ``metric``: its key in the results record's ``metrics``; ``better``:
    "lower" (a time) or "higher" (a rate); ``default``: the documented default
    threshold as (operator, value), or None (reported only, unless the user
    sets one).
    """

    name: str            # the figure's name within its family: "p50_ms"
    metric: str          # the results record's metrics key: "latency_p50_ms"
    better: str          # "lower" or "higher"
    unit: str
    default: tuple[str, float] | None = None
    note: str = ""       # why the default sits where it does (README, sockspec list)

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise ValueError(f"measure {self.name!r}: better must be 'lower' or 'higher'")
        if self.default is not None and self.default[0] not in OPERATORS:
            raise ValueError(f"measure {self.name!r}: bad default operator {self.default[0]!r}")

    @property
    def natural_operator(self) -> str:
        """The operator a bare number in the targets file means: an upper bound for a
        time, a lower bound for a rate."""
        return "<=" if self.better == "lower" else ">="


@dataclass(frozen=True)
class Threshold:
    """``metric op value``, and whose it is: ``source`` is DEFAULT or where the user gave it."""

    metric: str          # "<family>.<figure>"
    op: str
    value: float
    source: str = DEFAULT

    @property
    def is_default(self) -> bool:
        return self.source == DEFAULT

    def met_by(self, observed: float) -> bool:
        return {"<": observed < self.value, "<=": observed <= self.value,
                ">": observed > self.value, ">=": observed >= self.value}[self.op]

    def expression(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def whose(self) -> str:
        return "documented default" if self.is_default else f"user's, from {self.source}"


def _number(text: object, what: str, error: type[Exception]) -> float:
    if isinstance(text, bool):
        raise error(f"{what}: the limit must be a number, got {text!r}")
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise error(f"{what}: the limit must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise error(f"{what}: the limit must be a finite number, got {text!r}")
    return value


def parse_expression(text: str, source: str, error: type[Exception] = UsageError) -> Threshold:
    """``latency.p99_ms<=5`` -> Threshold (the name is checked later, against the catalogue)."""
    match = EXPRESSION.match(text)
    if not match:
        raise error(f"{source}: {text!r} is not METRIC<=N, METRIC<N, METRIC>=N or METRIC>N "
                    "(e.g. latency.p99_ms<=5)")
    name, op, value = match.groups()
    return Threshold(name, op, _number(value, f"{source}: {text!r}", error), source)


def parse_cli_thresholds(texts: list[str] | tuple[str, ...]) -> tuple[Threshold, ...]:
    """The ``--threshold`` options, in order (a later one for the same metric wins)."""
    return tuple(parse_expression(text, "--threshold") for text in texts)


def parse_threshold_table(table: object, where: str) -> tuple[Threshold, ...]:
    """A target's ``thresholds`` table.

    Keys are ``family.figure`` (TOML reads ``latency.p50_ms = 5`` as a nested table, so
    both ``[server.thresholds]`` with dotted keys and ``[server.thresholds.latency]``
    work); a value is a number (an upper bound for a time, a lower bound for a rate)
    or a string with the operator (``"< 5"``, ``">= 1000"``).
    """
    where = f"{where}: key 'thresholds'"
    if not isinstance(table, dict):
        raise TargetConfigError(f"{where} must be a table of metric = limit "
                                "(e.g. latency.p50_ms = 5)")
    found: list[Threshold] = []

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                walk(value, name)
            elif isinstance(value, str):
                if not value.strip().startswith(("<", ">")):
                    raise TargetConfigError(f"{where}: {name} = {value!r}: give a number, or "
                                            "a string with <, <=, > or >= (e.g. \"<= 5\")")
                found.append(parse_expression(f"{name}{value.strip()}", where,
                                              TargetConfigError))
            else:
                found.append(Threshold(name, "", _number(value, f"{where}: {name}",
                                                         TargetConfigError), where))

    walk(table, "")
    return tuple(found)


def resolve_names(thresholds: tuple[Threshold, ...], measures: dict[str, Measure],
                  error: type[Exception]) -> tuple[Threshold, ...]:
    """Check every name against the catalogue's measures; give a bare number its
    natural operator. ``error``: UsageError for --threshold, TargetConfigError for a file."""
    resolved = []
    for threshold in thresholds:
        measure = measures.get(threshold.metric)
        if measure is None:
            close = difflib.get_close_matches(threshold.metric.replace("_", "."),
                                              list(measures), n=1, cutoff=0.6)
            close = close or difflib.get_close_matches(threshold.metric, list(measures),
                                                       n=1, cutoff=0.6)
            advice = (f"did you mean {close[0]!r}?" if close
                      else "see `sockspec list --thresholds`")
            raise error(f"{threshold.source}: unknown metric {threshold.metric!r}; {advice}")
        op = threshold.op or measure.natural_operator
        resolved.append(Threshold(threshold.metric, op, threshold.value, threshold.source))
    return tuple(resolved)


def default_threshold(family: str, measure: Measure) -> Threshold | None:
    if measure.default is None:
        return None
    op, value = measure.default
    return Threshold(f"{family}.{measure.name}", op, value, DEFAULT)


def describe_default(measure: Measure) -> str:
    if measure.default is None:
        return "none (reported only)"
    return f"{measure.default[0]} {measure.default[1]:g}"


class Figures(dict):
    """Numbers a scenario measured (the results record's ``metrics``), and their verdicts.

    ``judge`` compares one figure with its threshold (the user's, else the family's
    default) and notes which threshold was applied and whose it was (``applied``:
    the record's ``thresholds``). A miss does not stop the scenario: its remaining
    checks still run, and the harness raises ``verdict()`` after the scenario
    returned: a miss of a user's threshold is a MUST failure, of a default a warning.
    """

    def __init__(self, family_name: str = "", measures: tuple[Measure, ...] = (),
                 user: tuple[Threshold, ...] = ()) -> None:
        super().__init__()
        self.family_name = family_name
        self.measures = {m.name: m for m in measures}
        self.user = {t.metric: t for t in user}    # a later one for the same metric wins
        self.applied: list[dict] = []
        self.misses: list[tuple[Threshold, str, dict]] = []

    def record(self, name: str, value: float) -> None:
        self[name] = round(float(value), 9)

    def judge(self, figure: str, observed: float, why: str = "", **facts: object) -> bool:
        """Record ``figure`` and judge it; True when no threshold applies or it is met.

        ``why``: what a miss usually means (shown in the evidence); ``facts``: the
        evidence of a miss.
        """
        measure, threshold = self._threshold_of(figure)
        self.record(measure.metric, observed)
        name = f"{self.family_name}.{figure}"
        if threshold is None:
            return True
        met = threshold.met_by(observed)
        self.applied.append({
            "metric": name, "op": threshold.op, "limit": threshold.value,
            "observed": round(float(observed), 9), "unit": measure.unit, "met": met,
            "whose": "default" if threshold.is_default else "user",
            "source": threshold.source, "level": "INFO" if threshold.is_default else "MUST",
        })
        if not met:
            self.misses.append((threshold, why, dict(facts)))
        return met

    def meets(self, figure: str, observed: float) -> bool:
        """Whether ``observed`` meets ``figure``'s threshold (True when none applies),
        without recording or judging it: to decide whether to measure again."""
        _, threshold = self._threshold_of(figure)
        return threshold is None or threshold.met_by(observed)

    def _threshold_of(self, figure: str) -> tuple[Measure, Threshold | None]:
        measure = self.measures.get(figure)
        if measure is None:
            raise KeyError(f"family {self.family_name!r} declares no measure {figure!r}")
        name = f"{self.family_name}.{figure}"
        return measure, self.user.get(name) or default_threshold(self.family_name, measure)

    def verdict(self):
        """The ScenarioFailed for the thresholds missed, or None when none was."""
        from sockspec.verdict import INFO, MUST, ScenarioFailed

        if not self.misses:
            return None
        by_user = [m for m in self.misses if not m[0].is_default]
        lines = []
        facts: dict[str, object] = {}
        for threshold, why, more in self.misses:
            measure = self.measures[threshold.metric.split(".", 1)[1]]
            observed = self[measure.metric]
            lines.append(f"{threshold.metric} = {observed:g} {measure.unit}: threshold "
                         f"{threshold.op} {threshold.value:g} ({threshold.whose()}) not met"
                         + (f"; {why}" if why else ""))
            facts.update(more)
        if by_user:
            summary = "; ".join(lines)
        else:
            summary = ("; ".join(lines) + ". A default threshold is a capacity figure: its "
                       "miss is a warning; set your own (targets file [server.thresholds] "
                       "or --threshold) to make it a failure")
        facts["thresholds_applied"] = ", ".join(
            f"{a['metric']}{a['op']}{a['limit']:g} ({a['whose']})" for a in self.applied)
        return ScenarioFailed(summary, level=MUST if by_user else INFO, **facts)
