"""What a :class:`~pytest_aegis.faults.proxy.FaultProxy` does to the bytes of each direction:
pure state and the checks of the arguments that set it (no sockets here)."""

from __future__ import annotations

import random
from dataclasses import dataclass
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


def non_negative(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}={value!r}: expected a number >= 0")
    return float(value)


def positive(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}={value!r}: expected a number > 0")
    return float(value)


@dataclass
class Flow:
    """One direction's faults now.  ``held``: a blackhole (nothing read, nothing forwarded; the
    bytes wait, as TCP's would on a path that heals)."""

    latency: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, uniform in [-jitter, +jitter], never below zero in all
    rate: float | None = None  # bytes per second; None: unlimited
    held: bool = False

    @property
    def plain(self) -> bool:
        """No fault: bytes go on as they arrive."""
        return not (self.latency or self.jitter or self.rate or self.held)

    def delay(self, rng: random.Random) -> float:
        """The delay for the next chunk."""
        if not self.jitter:
            return self.latency
        return max(0.0, self.latency + rng.uniform(-self.jitter, self.jitter))

    def transfer_time(self, size: int) -> float:
        """Seconds ``size`` bytes take at :attr:`rate`."""
        return size / self.rate if self.rate else 0.0

    def copy(self) -> Flow:
        return Flow(self.latency, self.jitter, self.rate, self.held)
