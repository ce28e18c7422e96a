"""Circuit breaker: closed -> open after N consecutive failures, open fails fast until the reset timeout,
then half-open lets one trial call through; its outcome closes or re-opens the circuit.

The clock is injectable (``time.monotonic`` by default), so the state machine is testable without sleeping.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpenError(Exception):
    """Raised instead of calling the protected operation while the circuit is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit '{name}' is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        name: str = "breaker",
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    # -- inspection --------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """Current state; an open circuit whose reset timeout elapsed reports half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    # -- protocol: before_call, then exactly one of record_success / record_failure ----------------

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpenError`. Half-open admits a single trial at a time."""
        state = self.state
        if state is BreakerState.OPEN:
            raise CircuitOpenError(self.name, self.retry_after())
        if state is BreakerState.HALF_OPEN:
            if self._trial_in_flight:
                raise CircuitOpenError(self.name, 0.0)
            self._trial_in_flight = True

    def record_success(self) -> None:
        self._trial_in_flight = False
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._transition(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._opened_at = self._clock()
            self._transition(BreakerState.OPEN)

    async def call(
        self, operation: Callable[[], Awaitable[T]], is_failure: Callable[[BaseException], bool]
    ) -> T:
        """Run ``operation`` through the breaker. Exceptions for which ``is_failure`` is false (e.g. a
        "key not found" answer) prove the dependency is up and count as success; they are re-raised."""
        self.before_call()
        try:
            result = await operation()
        except BaseException as exc:
            if isinstance(exc, Exception) and is_failure(exc):
                self.record_failure()
            elif isinstance(exc, Exception):
                self.record_success()
            else:  # cancelled: no verdict, free the trial slot
                self._trial_in_flight = False
            raise
        self.record_success()
        return result

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is new:
            return
        log = logger.warning if new is BreakerState.OPEN else logger.info
        log("circuit breaker %s: %s -> %s", self.name, old.value, new.value)
        if self._on_state_change is not None:
            self._on_state_change(old, new)
