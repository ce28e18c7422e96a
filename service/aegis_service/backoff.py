"""Exponential backoff with full jitter.

The delay is drawn uniformly from ``[0, min(cap, base * factor**attempt)]``.
"""

from __future__ import annotations

import random

_MAX_EXPONENT = 64  # beyond this the ceiling is always the cap; avoids float overflow


def backoff_ceiling(attempt: int, base: float, cap: float, factor: float = 2.0) -> float:
    """Upper bound of the delay before retry number ``attempt`` (0-based)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if base < 0 or cap < 0 or factor < 1:
        raise ValueError("base and cap must be >= 0 and factor >= 1")
    if attempt >= _MAX_EXPONENT:
        return cap
    return min(cap, base * factor**attempt)


def full_jitter(
    attempt: int, base: float, cap: float, factor: float = 2.0, rng: random.Random | None = None
) -> float:
    """A random delay in ``[0, backoff_ceiling(attempt, base, cap, factor)]`` ("full jitter")."""
    ceiling = backoff_ceiling(attempt, base, cap, factor)
    return (rng or random).uniform(0.0, ceiling)
