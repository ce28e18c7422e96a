"""Circuit breaker state machine, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeClock

from aegis_service.breaker import BreakerState, CircuitBreaker, CircuitOpenError


def make(clock: FakeClock, threshold: int = 3, reset: float = 5.0) -> tuple[CircuitBreaker, list[str]]:
    changes: list[str] = []
    breaker = CircuitBreaker(
        "test",
        failure_threshold=threshold,
        reset_timeout=reset,
        clock=clock,
        on_state_change=lambda old, new: changes.append(f"{old.value}->{new.value}"),
    )
    return breaker, changes


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def test_starts_closed_and_admits_calls(clock: FakeClock) -> None:
    breaker, changes = make(clock)
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_success()
    assert changes == []


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker, changes = make(clock, threshold=3)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert changes == ["closed->open"]


def test_a_success_resets_the_failure_count(clock: FakeClock) -> None:
    breaker, _ = make(clock, threshold=3)
    fail(breaker, 2)
    breaker.before_call()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_open_fails_fast_with_retry_after(clock: FakeClock) -> None:
    breaker, _ = make(clock, threshold=1, reset=5.0)
    fail(breaker)
    clock.advance(2.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.retry_after == pytest.approx(3.0)
    assert breaker.retry_after() == pytest.approx(3.0)


def test_half_open_after_reset_timeout_admits_exactly_one_trial(clock: FakeClock) -> None:
    breaker, changes = make(clock, threshold=1, reset=5.0)
    fail(breaker)
    clock.advance(4.999)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.001)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_after() == 0.0
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # concurrent callers still fail fast
    assert changes == ["closed->open", "open->half-open"]


def test_trial_success_closes(clock: FakeClock) -> None:
    breaker, changes = make(clock, threshold=2, reset=1.0)
    fail(breaker, 2)
    clock.advance(1.0)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert changes == ["closed->open", "open->half-open", "half-open->closed"]
    fail(breaker)  # one failure after closing does not re-open a threshold-2 breaker
    assert breaker.state is BreakerState.CLOSED


def test_trial_failure_reopens_with_a_fresh_timer(clock: FakeClock) -> None:
    breaker, changes = make(clock, threshold=5, reset=2.0)
    fail(breaker, 5)
    clock.advance(2.0)
    fail(breaker)  # the half-open trial fails: re-open at once, threshold does not apply
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(2.0)
    clock.advance(1.0)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert changes == ["closed->open", "open->half-open", "half-open->open", "open->half-open"]


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_timeout=0)


# -- call(): classification of outcomes -----------------------------------------------------------------


class Outage(Exception):
    pass


class Answer(Exception):
    """A "negative" answer (e.g. key not found): the dependency is up."""


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, Outage)


async def returns(value: int) -> int:
    return value


async def raises(exc: BaseException) -> int:
    raise exc


@pytest.mark.asyncio
async def test_call_counts_only_classified_failures(clock: FakeClock) -> None:
    breaker, _ = make(clock, threshold=2)
    assert await breaker.call(lambda: returns(1), is_outage) == 1
    with pytest.raises(Answer):
        await breaker.call(lambda: raises(Answer()), is_outage)
    assert breaker.consecutive_failures == 0
    for _ in range(2):
        with pytest.raises(Outage):
            await breaker.call(lambda: raises(Outage()), is_outage)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call(lambda: returns(2), is_outage)


@pytest.mark.asyncio
async def test_open_circuit_does_not_run_the_operation(clock: FakeClock) -> None:
    breaker, _ = make(clock, threshold=1)
    fail(breaker)
    ran: list[bool] = []

    async def operation() -> int:
        ran.append(True)
        return 0

    with pytest.raises(CircuitOpenError):
        await breaker.call(operation, is_outage)
    assert ran == []


@pytest.mark.asyncio
async def test_cancelled_trial_frees_the_half_open_slot(clock: FakeClock) -> None:
    breaker, _ = make(clock, threshold=1, reset=1.0)
    fail(breaker)
    clock.advance(1.0)
    with pytest.raises(asyncio.CancelledError):
        await breaker.call(lambda: raises(asyncio.CancelledError()), is_outage)
    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(lambda: returns(3), is_outage) == 3  # a new trial is admitted
    assert breaker.state is BreakerState.CLOSED
