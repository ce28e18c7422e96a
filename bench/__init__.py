"""Benchmarks of pytest-aegis.

Run them with ``python -m bench [--only SUITE] [--reps N] [--quick] [--out FILE]``.

Each suite is a module of this package with the shape of :class:`Suite`: a
``run(reps, quick)`` function returning a JSON-serialisable dict.  Register a
new suite (health round-trip, registry API, postgres, ...) in
:data:`bench.__main__.SUITES`; suites are imported only when
selected, so one suite's dependencies never burden another.
"""

from __future__ import annotations

from typing import Any, Protocol


class Suite(Protocol):
    """What a suite module provides."""

    def run(self, reps: int, quick: bool) -> dict[str, Any]:
        """Measure ``reps`` repetitions (``quick``: a smoke run) and return the results."""
        ...
