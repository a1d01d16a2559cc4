"""Inline SVG charts for the HTML report: pure functions from numbers to markup.

No JavaScript and no external resources, so a chart survives being mailed,
printed or opened with scripts disabled. Series are told apart by colour AND
marker shape AND a text legend, never by colour alone. Every label that comes
from a results file is escaped here, since the result is returned as Markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Okabe-Ito palette (readable for the common colour-vision deficiencies),
# with the yellow left out: it vanishes on white paper.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#8C6D31")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle-open", "square-open",
           "triangle-open")
MAX_SERIES = len(PALETTE)
MAX_BARS = 30

WIDTH = 680
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP = 64, 16, 28


@dataclass(frozen=True)
class Series:
    """One line of a chart: a label and its (x, y) points."""

    label: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Axis:
    """A mapping from data values to pixels, linear or log10, with its ticks."""

    low: float
    high: float
    log: bool
    ticks: tuple[float, ...]

    def position(self, value: float, start: float, end: float) -> float:
        lo, hi, v = self.low, self.high, value
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(value, self.low))
        fraction = 0.5 if hi == lo else (v - lo) / (hi - lo)
        return start + fraction * (end - start)


def format_number(value: float) -> str:
    """Three significant digits, thousands separated: 0.0123, 4.56, 1,230, 98,700."""
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(magnitude)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def value_axis(values: Sequence[float], *, allow_log: bool = True) -> Axis:
    """An axis for these values: log10 when they span more than 30x, else linear from 0."""
    positive = [v for v in values if v > 0]
    if allow_log and positive and max(positive) / min(positive) > 30:
        low = 10 ** math.floor(math.log10(min(positive)))
        high = 10 ** math.ceil(math.log10(max(positive)))
        decades = round(math.log10(high / low))
        steps = (1,) if decades > 3 else (1, 2, 5)
        ticks = tuple(m * 10 ** e for e in range(round(math.log10(low)), round(math.log10(high)) + 1)
                      for m in steps if low <= m * 10 ** e <= high)
        return Axis(low, high, True, ticks)
    high = max(values, default=1.0)
    high = high if high > 0 else 1.0
    raw_step = high / 5
    exponent = 10 ** math.floor(math.log10(raw_step))
    step = next(m * exponent for m in (1, 2, 2.5, 5, 10) if m * exponent >= raw_step)
    count = math.ceil(high / step - 1e-9)
    return Axis(0.0, step * count, False, tuple(step * i for i in range(count + 1)))


def nines(percentile: float) -> float:
    """Percentile -> distance in "nines" (90 -> 1, 99 -> 2, 99.9 -> 3): tails get room."""
    return -math.log10(max(1e-9, 1 - percentile / 100))


def percentile_label(percentile: float) -> str:
    return f"{percentile:g}%"


def _svg_open(height: int, title: str) -> list[str]:
    return [
        # Inline <svg> in HTML needs no xmlns: the HTML parser supplies the namespace.
        f'<svg viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart-svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" class="c-title">{escape(title)}</text>',
    ]


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    size = 3.5
    fill = "#fff" if kind.endswith("-open") else colour
    shape = kind.removesuffix("-open")
    style = f'fill="{fill}" stroke="{colour}" stroke-width="1.5"'
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size}" {style}/>'
    if shape == "square":
        return (f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size}" '
                f'height="{2 * size}" {style}/>')
    if shape == "triangle":
        return (f'<path d="M{x:.1f},{y - size - 1:.1f} L{x + size + 0.5:.1f},{y + size:.1f} '
                f'L{x - size - 0.5:.1f},{y + size:.1f} Z" {style}/>')
    if shape == "diamond":
        return (f'<path d="M{x:.1f},{y - size - 1:.1f} L{x + size + 1:.1f},{y:.1f} '
                f'L{x:.1f},{y + size + 1:.1f} L{x - size - 1:.1f},{y:.1f} Z" {style}/>')
    return (f'<path d="M{x - size:.1f},{y - size:.1f} L{x + size:.1f},{y + size:.1f} '
            f'M{x - size:.1f},{y + size:.1f} L{x + size:.1f},{y - size:.1f}" '
            f'stroke="{colour}" stroke-width="2" fill="none"/>')


def _legend(labels: Sequence[str], top: float) -> list[str]:
    parts = []
    for index, label in enumerate(labels):
        column, row = index % 2, index // 2
        x, y = PLOT_LEFT + column * 300, top + row * 16
        colour, marker = PALETTE[index], MARKERS[index]
        parts.append(f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/>')
        parts.append(_marker(marker, x + 11, y, colour))
        short = label if len(label) <= 44 else label[:43] + "\u2026"
        parts.append(f'<text x="{x + 28}" y="{y + 4}" class="c-legend">{escape(short)}</text>')
    return parts


def line_chart(series: Sequence[Series], *, title: str, x_axis: Axis, y_axis: Axis,
               x_label: str, y_label: str, x_tick_labels: dict[float, str] | None = None,
               step: bool = False) -> Markup:
    """Lines with markers; ``step`` draws a staircase (for a CDF)."""
    shown = list(series)[:MAX_SERIES]
    plot_height = 220
    legend_top = PLOT_TOP + plot_height + 44
    height = legend_top + 16 * ((len(shown) + 1) // 2) + 4
    left, right = PLOT_LEFT, WIDTH - PLOT_RIGHT
    top, bottom = PLOT_TOP, PLOT_TOP + plot_height
    parts = _svg_open(height, title)
    for tick in y_axis.ticks:
        y = y_axis.position(tick, bottom, top)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="c-grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="c-tick" text-anchor="end">'
                     f"{escape(format_number(tick))}</text>")
    for tick in x_axis.ticks:
        x = x_axis.position(tick, left, right)
        label = (x_tick_labels or {}).get(tick, format_number(tick))
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" class="c-grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" class="c-tick" text-anchor="middle">'
                     f"{escape(label)}</text>")
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="c-axis"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" class="c-axis"/>')
    parts.append(f'<text x="{(left + right) / 2}" y="{bottom + 34}" class="c-label" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{(top + bottom) / 2}" class="c-label" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(top + bottom) / 2})">{escape(y_label)}</text>')
    for index, line in enumerate(shown):
        colour, marker = PALETTE[index], MARKERS[index]
        pixels = [(x_axis.position(x, left, right), y_axis.position(y, bottom, top))
                  for x, y in line.points]
        if step:
            # A CDF is a staircase: at each latency the fraction jumps up.
            d = " ".join(f"M{x:.1f},{y:.1f}" if i == 0 else f"H{x:.1f} V{y:.1f}"
                         for i, (x, y) in enumerate(pixels))
        else:
            d = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(pixels))
        parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        parts.append(f"<g><title>{escape(line.label)}</title>")
        if not step or len(pixels) <= 12:
            parts.extend(_marker(marker, x, y, colour) for x, y in pixels)
        parts.append("</g>")
    parts.extend(_legend([s.label for s in shown], legend_top))
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, unit: str) -> Markup:
    """Horizontal bars, longest first, each labelled with its value and unit."""
    shown = sorted(bars, key=lambda bar: -bar[1])[:MAX_BARS]
    row, label_width = 22, 210
    left, right = label_width + 8, WIDTH - 90
    top = PLOT_TOP + 6
    height = top + row * len(shown) + 30
    axis = value_axis([value for _, value in shown], allow_log=False)
    parts = _svg_open(height, title)
    for tick in axis.ticks:
        x = axis.position(tick, left, right)
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" '
                     f'y2="{top + row * len(shown)}" class="c-grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + row * len(shown) + 16}" class="c-tick" '
                     f'text-anchor="middle">{escape(format_number(tick))}</text>')
    for index, (label, value) in enumerate(shown):
        y = top + index * row
        width = max(1.0, axis.position(value, left, right) - left)
        short = label if len(label) <= 32 else label[:31] + "\u2026"
        parts.append(f"<g><title>{escape(label)}: {escape(format_number(value))} {escape(unit)}"
                     "</title>")
        parts.append(f'<text x="{label_width}" y="{y + 15}" class="c-tick" text-anchor="end">'
                     f"{escape(short)}</text>")
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{width:.1f}" height="{row - 7}" '
                     f'fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{left + width + 5:.1f}" y="{y + 15}" class="c-value">'
                     f"{escape(format_number(value))} {escape(unit)}</text></g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def percentile_plot(series: Sequence[Series], *, title: str,
                    with_max: dict[str, float] | None = None) -> Markup:
    """Latency (y) by percentile (x, in nines); ``with_max`` adds a final "max" point."""
    top_nines = max((nines(p) for s in series for p, _ in s.points), default=1.0)
    top_nines = max(1.0, math.ceil(top_nines - 1e-9))
    max_x = top_nines + 0.6
    lines = []
    for s in series:
        points = [(nines(p), v) for p, v in sorted(s.points)]
        if with_max and s.label in with_max:
            points.append((max_x, with_max[s.label]))
        lines.append(Series(s.label, tuple(points)))
    starts_at_median = all(x >= nines(50) for s in lines for x, _ in s.points)
    tick_labels = {nines(p): percentile_label(p) for p in (0, 50, 90, 99, 99.9, 99.99, 99.999)
                   if nines(p) <= top_nines + 1e-9 and not (p == 0 and starts_at_median)}
    if with_max:
        tick_labels[max_x] = "max"
    x_axis = Axis(nines(50) if starts_at_median else 0.0,
                  max_x if with_max else top_nines, False, tuple(sorted(tick_labels)))
    y_axis = value_axis([y for s in lines for _, y in s.points])
    return line_chart(lines, title=title, x_axis=x_axis, y_axis=y_axis,
                      x_label="percentile (log scale of 1 - p)", y_label="latency (ms)",
                      x_tick_labels=tick_labels)


def cdf_plot(series: Sequence[Series], *, title: str) -> Markup:
    """Cumulative fraction (y, 0..100 %) against latency (x): the body of the distribution."""
    lines = [Series(s.label, tuple(sorted((v, p) for p, v in s.points))) for s in series]
    x_axis = value_axis([x for s in lines for x, _ in s.points])
    y_axis = Axis(0.0, 100.0, False, (0.0, 25.0, 50.0, 75.0, 100.0))
    return line_chart(lines, title=title, x_axis=x_axis, y_axis=y_axis,
                      x_label="latency (ms)", y_label="% of requests at or below",
                      step=True)


def xy_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str) -> Markup:
    """A plain x/y line chart (e.g. setup time against concurrent connections)."""
    x_axis = value_axis([x for s in series for x, _ in s.points])
    y_axis = value_axis([y for s in series for _, y in s.points])
    return line_chart(series, title=title, x_axis=x_axis, y_axis=y_axis,
                      x_label=x_label, y_label=y_label)
