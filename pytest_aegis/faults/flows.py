"""What a :class:`~pytest_aegis.faults.proxy.FaultProxy` does to the bytes of each direction:
pure state and the checks of the arguments that set it (no sockets here).

Each fault in effect is one :class:`Effect` on one or both sides; a side's :class:`Flow` is the
fold of the effects on it, in the order they began (toxiproxy's toxic chain): latencies add up,
the lowest bandwidth wins, any blackhole holds, the latest slicer slices, every byte limit and
every ending counts.  Removing one fault folds the others again, so it never undoes a later one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

#: Which bytes a fault applies to: ``upstream`` (client to server), ``downstream`` (server to
#: client), or ``both``.
Direction = Literal["both", "upstream", "downstream"]
Side = Literal["upstream", "downstream"]
SIDES: tuple[Side, ...] = ("upstream", "downstream")


def sides_of(direction: str) -> tuple[Side, ...]:
    """The sides ``direction`` names; :class:`ValueError` listing the valid values otherwise."""
    if direction == "both":
        return SIDES
    if direction in SIDES:
        return (direction,)
    valid = ", ".join(get_args(Direction))
    raise ValueError(f"direction={direction!r} is not one of: {valid}")


def _number(name: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: expected a number")
    return float(value)


def non_negative(name: str, value: float) -> float:
    if _number(name, value) < 0:
        raise ValueError(f"{name}={value!r}: expected a number >= 0")
    return float(value)


def positive(name: str, value: float) -> float:
    if _number(name, value) <= 0:
        raise ValueError(f"{name}={value!r}: expected a number > 0")
    return float(value)


def whole(name: str, value: int, *, minimum: int) -> int:
    """``value`` as a whole number >= ``minimum``; :class:`ValueError` naming it otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected a whole number >= {minimum}")
    return value


@dataclass(frozen=True)
class Slicing:
    """Bytes written in slices of ``average`` ± ``variation`` bytes, ``delay`` seconds apart."""

    average: int
    variation: int = 0
    delay: float = 0.0

    def sizes(self, total: int, rng: random.Random) -> Iterator[int]:
        """The slice sizes for ``total`` bytes (each at least 1; they add up to ``total``)."""
        left = total
        while left > 0:
            size = self.average + (rng.randint(-self.variation, self.variation) if self.variation else 0)
            size = min(left, max(1, size))
            left -= size
            yield size


@dataclass(frozen=True)
class Ending:
    """A link ends ``after`` seconds: reset (TCP RST) or closed (FIN).  The clock starts when the
    fault begins for links open then, and when a link is accepted for later ones."""

    reset: bool
    after: float
    since: float  # the proxy loop's time when the fault began


@dataclass(frozen=True)
class Effect:
    """One fault's part in one side's :class:`Flow`."""

    latency: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, uniform in [-jitter, +jitter], never below zero in all
    rate: float | None = None  # bytes per second
    held: bool = False  # a blackhole: nothing read, nothing forwarded; the bytes wait
    slicing: Slicing | None = None
    limit: int | None = None  # bytes, then the link is closed
    slow_close: float = 0.0  # seconds a close (or half-close) waits before it is passed on
    ending: Ending | None = None


@dataclass
class Flow:
    """One direction's faults now: the fold of its effects.  ``limits`` and ``endings`` are keyed
    by the fault that set them, so each link counts and times each one once."""

    latency: float = 0.0
    jitter: float = 0.0
    rate: float | None = None
    held: bool = False
    slicing: Slicing | None = None
    slow_close: float = 0.0
    limits: dict[int, int] = field(default_factory=dict)
    endings: dict[int, Ending] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """Bytes go on as they arrive."""
        return not (self.latency or self.jitter or self.rate or self.held or self.slicing or self.limits)

    def delay(self, rng: random.Random) -> float:
        """The delay for the next chunk."""
        if not self.jitter:
            return self.latency
        return max(0.0, self.latency + rng.uniform(-self.jitter, self.jitter))

    def transfer_time(self, size: int) -> float:
        """Seconds ``size`` bytes take at :attr:`rate`."""
        return size / self.rate if self.rate else 0.0


def fold(effects: list[tuple[int, Effect]]) -> Flow:
    """The flow of a side with these effects (in the order they began)."""
    flow = Flow()
    for key, effect in effects:
        flow.latency += effect.latency
        flow.jitter += effect.jitter
        if effect.rate is not None:
            flow.rate = effect.rate if flow.rate is None else min(flow.rate, effect.rate)
        flow.held = flow.held or effect.held
        flow.slicing = effect.slicing or flow.slicing
        flow.slow_close = max(flow.slow_close, effect.slow_close)
        if effect.limit is not None:
            flow.limits[key] = effect.limit
        if effect.ending is not None:
            flow.endings[key] = effect.ending
    return flow
