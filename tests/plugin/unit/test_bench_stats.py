"""Unit tests for :mod:`bench.stats` (pure functions, no I/O).

Expected percentiles are computed by hand with linear interpolation between
closest ranks (numpy's default method) and cross-checked against
``statistics.quantiles(method="inclusive")``.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from bench import stats

SECONDS = [0.010, 0.012, 0.011, 0.030, 0.013]  # sorted: 10, 11, 12, 13, 30 ms


def test_to_ms():
    assert stats.to_ms(0.015) == pytest.approx(15.0)
    assert stats.to_ms(0) == 0


def test_median_odd_and_even():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([7.0]) == 7.0


def test_percentile_interpolates_linearly():
    values = [10.0, 20.0, 30.0, 40.0]
    assert stats.percentile(values, 0) == 10.0
    assert stats.percentile(values, 100) == 40.0
    # rank = 3 * 0.9 = 2.7 -> 30 + 0.7 * 10
    assert stats.percentile(values, 90) == pytest.approx(37.0)
    # rank = 3 * 0.99 = 2.97 -> 30 + 0.97 * 10
    assert stats.percentile(values, 99) == pytest.approx(39.7)


def test_percentile_does_not_depend_on_order_or_mutate():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    copy = list(values)
    assert stats.percentile(values, 50) == 3.0
    assert values == copy


@pytest.mark.parametrize("q", [10, 25, 50, 75, 90])
def test_percentile_matches_statistics_quantiles(q):
    rng = random.Random(1234)
    values = [rng.uniform(0.005, 0.05) for _ in range(40)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # cuts[i] is the (i+1)-th percentile
    assert stats.percentile(values, q) == pytest.approx(cuts[q - 1])


def test_mean():
    assert stats.mean([1.0, 2.0, 3.0, 6.0]) == 3.0


def test_summarize_converts_seconds_to_ms():
    summary = stats.summarize(SECONDS)
    assert summary["n"] == 5
    assert summary["median_ms"] == pytest.approx(12.0)
    assert summary["min_ms"] == pytest.approx(10.0)
    assert summary["max_ms"] == pytest.approx(30.0)
    assert summary["mean_ms"] == pytest.approx(15.2)
    # rank 4 * 0.9 = 3.6 -> 13 + 0.6 * 17; rank 4 * 0.99 = 3.96 -> 13 + 0.96 * 17
    assert summary["p90_ms"] == pytest.approx(23.2)
    assert summary["p99_ms"] == pytest.approx(29.32)
    assert set(summary) == {"n", "median_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "mean_ms"}


def test_summarize_orders_its_statistics():
    rng = random.Random(7)
    summary = stats.summarize([rng.expovariate(100) for _ in range(200)])
    ordered = [summary[key] for key in ("min_ms", "median_ms", "p90_ms", "p99_ms", "max_ms")]
    assert ordered == sorted(ordered)


def test_summarize_rounds_to_microseconds():
    summary = stats.summarize([0.0123456789])
    assert summary["median_ms"] == 12.346
    assert stats.summarize([0.0123456789], digits=6)["median_ms"] == 12.345679


def test_ratio():
    assert stats.ratio(0.015, 0.010) == 1.5
    assert stats.ratio(1.0, 3.0) == 0.333
    with pytest.raises(ValueError, match="positive denominator"):
        stats.ratio(1.0, 0.0)


def test_paired_ratio_median():
    assert stats.paired_ratio_median([2.0, 3.0, 10.0], [1.0, 1.0, 1.0]) == 3.0
    with pytest.raises(ValueError, match="unpaired"):
        stats.paired_ratio_median([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.median([]),
        lambda: stats.mean([]),
        lambda: stats.summarize([]),
        lambda: stats.percentile([], 50),
        lambda: stats.median([1.0, math.nan]),
    ],
    ids=["median", "mean", "summarize", "percentile", "nan"],
)
def test_bad_samples_raise(call):
    with pytest.raises(ValueError, match=r"no samples|NaN"):
        call()


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_out_of_range(q):
    with pytest.raises(ValueError, match="within"):
        stats.percentile([1.0], q)
