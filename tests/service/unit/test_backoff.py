"""Exponential backoff with full jitter: ceilings and bounds."""

from __future__ import annotations

import random

import pytest

from aegis_service.backoff import backoff_ceiling, full_jitter


def test_ceiling_doubles_then_caps() -> None:
    ceilings = [backoff_ceiling(n, base=0.1, cap=5.0) for n in range(8)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_custom_factor() -> None:
    assert backoff_ceiling(2, base=1.0, cap=100.0, factor=3.0) == 9.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_ceiling(10_000, base=0.1, cap=5.0) == 5.0
    assert 0.0 <= full_jitter(10_000, base=0.1, cap=5.0) <= 5.0


@pytest.mark.parametrize("attempt", [0, 1, 3, 6, 20])
def test_full_jitter_stays_within_zero_and_the_ceiling(attempt: int) -> None:
    rng = random.Random(1234)
    ceiling = backoff_ceiling(attempt, base=0.25, cap=2.0)
    samples = [full_jitter(attempt, base=0.25, cap=2.0, rng=rng) for _ in range(2000)]
    assert all(0.0 <= delay <= ceiling for delay in samples)
    # "full" jitter: the draws spread over the whole range rather than clustering at the top
    assert min(samples) < 0.1 * ceiling
    assert max(samples) > 0.9 * ceiling
    assert sum(samples) / len(samples) == pytest.approx(ceiling / 2, rel=0.1)


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = [full_jitter(n, 0.1, 5.0, rng=random.Random(7)) for n in range(5)]
    second = [full_jitter(n, 0.1, 5.0, rng=random.Random(7)) for n in range(5)]
    assert first == second


def test_zero_cap_means_no_delay() -> None:
    assert full_jitter(3, base=0.1, cap=0.0) == 0.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "factor"),
    [(-1, 0.1, 1.0, 2.0), (0, -0.1, 1.0, 2.0), (0, 0.1, -1.0, 2.0), (0, 0.1, 1.0, 0.5)],
)
def test_invalid_arguments(attempt: int, base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        backoff_ceiling(attempt, base, cap, factor)
