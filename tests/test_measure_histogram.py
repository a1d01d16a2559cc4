"""The HdrHistogram wrapper: percentiles of known distributions, correction, merging."""

import random

import pytest

from sockspec.measure.histogram import (
    HIGHEST_NS,
    NS_PER_MS,
    LatencyHistogram,
    merge,
    merge_encoded,
)


def uniform_histogram(low: int, high: int) -> LatencyHistogram:
    histogram = LatencyHistogram()
    histogram.record_many(range(low, high + 1))
    return histogram


def test_percentiles_of_a_uniform_distribution_within_the_resolution():
    # 1 µs .. 100 ms in 1 µs steps: p-th percentile is p% of 100 ms.
    histogram = LatencyHistogram()
    histogram.record_many(range(1000, 100_000_001, 1000))
    values = histogram.percentiles_ms([50.0, 90.0, 99.0, 99.9])
    for percentile, value in values.items():
        exact = percentile  # ms, since 100 ms * p / 100
        assert abs(value - exact) <= exact * 0.001 + 0.001, (percentile, value)
    assert histogram.count == 100_000
    assert histogram.max_ns == pytest.approx(100_000_000, rel=0.001)
    assert histogram.min_ns == pytest.approx(1000, rel=0.001)


def test_percentiles_of_a_bimodal_distribution():
    # 98 % fast (10 µs), 2 % slow (5 ms): p50/p90 fast, p99/p99.9 slow.
    histogram = LatencyHistogram()
    histogram.record_many([10_000] * 9800 + [5_000_000] * 200)
    summary = histogram.summary()
    assert summary.p50_ms == pytest.approx(0.010, rel=0.001)
    assert summary.p90_ms == pytest.approx(0.010, rel=0.001)
    assert summary.p99_ms == pytest.approx(5.0, rel=0.001)
    assert summary.p999_ms == pytest.approx(5.0, rel=0.001)
    assert summary.count == 10_000
    assert histogram.count_above_ns(1_000_000) == 200


def test_summary_metric_names_are_the_results_json_names():
    metrics = uniform_histogram(1, 1000).summary().metrics()
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_p999_ms",
                 "latency_max_ms", "latency_count"):
        assert name in metrics
    assert metrics["latency_count"] == 1000
    cdf = {k: v for k, v in metrics.items() if k.startswith("latency_cdf_")}
    assert "latency_cdf_50_ms" in cdf and "latency_cdf_99.9_ms" in cdf
    assert list(cdf.values()) == sorted(cdf.values())  # a CDF never decreases


def test_empty_histogram_reports_zeros_not_errors():
    summary = LatencyHistogram().summary()
    assert summary.count == 0 and summary.p99_ms == 0.0 and summary.max_ms == 0.0


def test_negative_latency_is_refused_and_huge_ones_are_clamped():
    histogram = LatencyHistogram()
    with pytest.raises(ValueError):
        histogram.record(-1)
    histogram.record(HIGHEST_NS * 10)
    assert histogram.clamped == 1 and histogram.count == 1


def test_corrected_recording_adds_the_samples_a_constant_rate_sender_would_see():
    # One 1 s service time where a request was due every 10 ms: HdrHistogram adds
    # 990, 980, ... 10 ms (99 more samples), as if the waiting requests had been sent.
    histogram = LatencyHistogram()
    histogram.record_corrected(1_000_000_000, 10_000_000)
    assert histogram.count == 100
    assert histogram.value_at_ns(50) == pytest.approx(500 * NS_PER_MS, rel=0.01)
    plain = LatencyHistogram()
    plain.record(1_000_000_000)
    assert plain.count == 1


def test_encode_decode_round_trip_keeps_every_count():
    histogram = uniform_histogram(500, 50_000)
    copy = LatencyHistogram.decode(histogram.encode())
    assert copy.count == histogram.count
    assert copy.percentiles_ms() == histogram.percentiles_ms()
    assert copy.max_ns == histogram.max_ns


def test_merging_generators_equals_the_histogram_of_all_samples():
    rng = random.Random(7)
    parts = [[rng.randrange(1_000, 10_000_000) for _ in range(5000)] for _ in range(4)]
    generators = []
    for samples in parts:
        histogram = LatencyHistogram()
        histogram.record_many(samples)
        generators.append(histogram)
    everything = LatencyHistogram()
    everything.record_many(v for samples in parts for v in samples)
    merged = merge_encoded(h.encode() for h in generators)
    assert merged.count == sum(len(p) for p in parts) == everything.count
    wanted = [0.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0]
    assert merged.percentiles_ms(wanted) == everything.percentiles_ms(wanted)
    assert merge(generators).count == everything.count
