"""Summary statistics for benchmark samples: pure functions, no I/O.

Samples are durations in **seconds** (as :func:`time.perf_counter` differences
give them); summaries are in **milliseconds**.  Percentiles interpolate
linearly between the closest ranks (numpy's default, ``statistics.quantiles``'s
``method="inclusive"``), so ``p0`` is the minimum and ``p100`` the maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MS_PER_S = 1000.0
DIGITS = 3  # microsecond resolution in the reports


def _checked(samples: Sequence[float]) -> list[float]:
    if not samples:
        raise ValueError("no samples")
    values = [float(value) for value in samples]
    if any(math.isnan(value) for value in values):
        raise ValueError("samples contain NaN")
    return values


def to_ms(seconds: float) -> float:
    """Seconds to milliseconds."""
    return seconds * MS_PER_S


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (``0 <= q <= 100``) of ``samples``, in their unit."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    values = sorted(_checked(samples))
    rank = (len(values) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    """The median of ``samples``, in their unit."""
    return percentile(samples, 50)


def mean(samples: Sequence[float]) -> float:
    """The arithmetic mean of ``samples``, in their unit."""
    values = _checked(samples)
    return math.fsum(values) / len(values)


def summarize(samples_s: Sequence[float], *, digits: int = DIGITS) -> dict[str, float | int]:
    """``n`` and median, p90, p99, min, max, mean in milliseconds of ``samples_s`` (seconds)."""
    values = _checked(samples_s)
    summary: dict[str, float | int] = {"n": len(values)}
    for key, value in (
        ("median_ms", median(values)),
        ("p90_ms", percentile(values, 90)),
        ("p99_ms", percentile(values, 99)),
        ("min_ms", min(values)),
        ("max_ms", max(values)),
        ("mean_ms", mean(values)),
    ):
        summary[key] = round(to_ms(value), digits)
    return summary


def ratio(numerator: float, denominator: float, *, digits: int = DIGITS) -> float:
    """``numerator / denominator`` rounded; raise on a non-positive denominator."""
    if denominator <= 0:
        raise ValueError(f"ratio needs a positive denominator, got {denominator}")
    return round(numerator / denominator, digits)


def paired_ratio_median(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-pair ratios ``a[i] / b[i]`` (robust to drift across a run)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"unpaired samples: {len(numerators)} vs {len(denominators)}")
    pairs = zip(_checked(numerators), _checked(denominators), strict=True)
    return round(median([ratio(a, b, digits=12) for a, b in pairs]), DIGITS)
