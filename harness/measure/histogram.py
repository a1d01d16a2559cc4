"""A thin wrapper over HdrHistogram (PyPI ``hdrhistogram``) for latencies in nanoseconds.

Values are recorded in integer nanoseconds with 3 significant figures (0.1 %
resolution at every magnitude) from 1 ns to one hour; summaries are reported
in milliseconds under the metric names the results JSON and the HTML report
know (latency_p50_ms ... latency_count, latency_cdf_<pct>_ms). Histograms
travel between processes as HdrHistogram's standard base64 "histoblob" and
are merged with ``add``, so merging loses nothing: the merged percentiles are
those of the union of all samples (to the histogram's resolution).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

NS_PER_MS = 1_000_000
LOWEST_NS = 1
HIGHEST_NS = 3_600 * 1_000_000_000  # one hour: nothing we wait for lasts longer
SIGNIFICANT_FIGURES = 3
REPORTED_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# Points of the CDF chart: dense in the tail, where latency distributions differ.
CDF_PERCENTILES = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0)


@dataclass(frozen=True)
class LatencySummary:
    """The reported numbers of one histogram, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    count: int
    cdf_ms: tuple[tuple[float, float], ...] = ()  # (percentile, ms) points

    def metrics(self, *, with_cdf: bool = True) -> dict[str, float]:
        """The results-JSON metric names: latency_p50_ms ... latency_count (+ CDF points)."""
        found = {
            "latency_p50_ms": self.p50_ms,
            "latency_p90_ms": self.p90_ms,
            "latency_p99_ms": self.p99_ms,
            "latency_p999_ms": self.p999_ms,
            "latency_max_ms": self.max_ms,
            "latency_count": float(self.count),
        }
        if with_cdf:
            for percentile, value in self.cdf_ms:
                found[f"latency_cdf_{percentile:g}_ms"] = value
        return found

    def describe(self) -> str:
        return (f"{self.count} samples: p50 {self.p50_ms:.3f} ms, p90 {self.p90_ms:.3f} ms, "
                f"p99 {self.p99_ms:.3f} ms, p99.9 {self.p999_ms:.3f} ms, max {self.max_ms:.3f} ms")


class LatencyHistogram:
    """Latencies in nanoseconds; values above one hour are clamped and counted."""

    def __init__(self, hdr: HdrHistogram | None = None) -> None:
        self._hdr = hdr or HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)
        self.clamped = 0  # samples above HIGHEST_NS, recorded as HIGHEST_NS

    def record(self, value_ns: int) -> None:
        """Record one latency; negative values are a caller bug and raise ValueError."""
        if value_ns < 0:
            raise ValueError(f"latency cannot be negative: {value_ns} ns")
        if value_ns > HIGHEST_NS:
            self.clamped += 1
            value_ns = HIGHEST_NS
        self._hdr.record_value(int(value_ns))

    def record_many(self, values_ns: Iterable[int]) -> None:
        for value in values_ns:
            self.record(value)

    def record_corrected(self, value_ns: int, expected_interval_ns: int) -> None:
        """Record a service time measured by a closed loop that should have sent
        every ``expected_interval_ns``: HdrHistogram adds the samples a
        constant-rate sender would have seen while this one waited
        (value - interval, value - 2*interval, ... down to the interval).
        """
        if value_ns < 0 or expected_interval_ns < 0:
            raise ValueError("latency and interval must not be negative")
        self._hdr.record_corrected_value(min(int(value_ns), HIGHEST_NS),
                                         int(expected_interval_ns))

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    @property
    def max_ns(self) -> int:
        return int(self._hdr.get_max_value()) if self.count else 0

    @property
    def min_ns(self) -> int:
        return int(self._hdr.get_min_value()) if self.count else 0

    @property
    def mean_ns(self) -> float:
        return float(self._hdr.get_mean_value()) if self.count else 0.0

    def value_at_ns(self, percentile: float) -> int:
        """Highest value equivalent (to 0.1 %) to the sample at ``percentile`` (0-100)."""
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be within 0..100, not {percentile}")
        return int(self._hdr.get_value_at_percentile(percentile)) if self.count else 0

    def percentiles_ms(self, percentiles: Iterable[float] = REPORTED_PERCENTILES
                       ) -> dict[float, float]:
        wanted = list(percentiles)
        if not self.count:
            return {p: 0.0 for p in wanted}
        values = self._hdr.get_percentile_to_value_dict(wanted)
        return {p: values[p] / NS_PER_MS for p in wanted}

    def count_above_ns(self, threshold_ns: int) -> int:
        """How many samples are above ``threshold_ns`` (to the histogram's resolution)."""
        total = 0
        for item in self._hdr.get_recorded_iterator():
            if item.value_iterated_to > threshold_ns:
                total += item.count_added_in_this_iter_step
        return total

    def summary(self) -> LatencySummary:
        values = self.percentiles_ms([*REPORTED_PERCENTILES, *CDF_PERCENTILES])
        return LatencySummary(
            p50_ms=values[50.0], p90_ms=values[90.0], p99_ms=values[99.0],
            p999_ms=values[99.9], max_ms=self.max_ns / NS_PER_MS, count=self.count,
            cdf_ms=tuple((p, values[p]) for p in CDF_PERCENTILES) if self.count else (),
        )

    def add(self, other: LatencyHistogram) -> None:
        self._hdr.add(other._hdr)
        self.clamped += other.clamped

    def encode(self) -> bytes:
        """HdrHistogram's V2 compressed, base64 histoblob (portable between processes)."""
        return self._hdr.encode()

    @classmethod
    def decode(cls, blob: bytes | str) -> LatencyHistogram:
        return cls(HdrHistogram.decode(blob))


def merge(histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
    merged = LatencyHistogram()
    for histogram in histograms:
        merged.add(histogram)
    return merged


def merge_encoded(blobs: Iterable[bytes | str]) -> LatencyHistogram:
    """Merge histoblobs sent by several load generators into one histogram."""
    return merge(LatencyHistogram.decode(blob) for blob in blobs)
