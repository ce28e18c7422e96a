"""One wait strategy for the whole harness: timeout, poll interval, transient errors.

Readiness of the servers we start is *not* polled: it comes from their own
output (see :mod:`pytest_aegis.process`).  This module is for the places where
polling is the only honest option: an entry that must appear in a KV bucket,
a process that must be gone after a ``kill -9``, a port that must answer.

The schedule (start fast, back off to a cap, stop at a deadline) is shared by
the sync and the async loop; only the sleep differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from pytest_aegis.errors import WaitTimeout

__all__ = ["Poll", "WaitTimeout", "async_wait_until", "wait_until"]

T = TypeVar("T")


@dataclass
class Poll:
    """A polling schedule: ``timeout`` seconds in all, sleeping ``interval``
    seconds at first and doubling up to ``max_interval``.

    Iterate it (``for attempt in poll:`` or ``async for attempt in poll.aiter()``);
    each iteration is one attempt, the sleep happens between attempts, and the
    loop ends after the first attempt that starts past the deadline.
    """

    timeout: float
    interval: float = 0.002
    max_interval: float = 0.1
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _delays(self) -> Iterator[float | None]:
        """Yield the sleep before each next attempt, ``None`` when time is up."""
        delay = self.interval
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                yield None
                return
            yield min(delay, remaining)
            delay = min(delay * 2, self.max_interval)

    def __iter__(self) -> Iterator[int]:
        attempt = 0
        yield attempt
        for delay in self._delays():
            if delay is None:
                return
            time.sleep(delay)
            attempt += 1
            yield attempt

    async def aiter(self) -> AsyncIterator[int]:
        attempt = 0
        yield attempt
        for delay in self._delays():
            if delay is None:
                return
            await asyncio.sleep(delay)
            attempt += 1
            yield attempt


def _timeout_message(what: str, poll: Poll, last: object, hint: str | None) -> str:
    if isinstance(last, BaseException):  # its message, readable (an assertion's lists its lines)
        shown = f"{type(last).__name__}: " + str(last).replace("\n", "\n  ")
    else:
        shown = repr(last)
    lines = [f"timed out after {poll.elapsed:.2f}s waiting for {what}", f"last seen: {shown}"]
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


def wait_until(
    probe: Callable[[], T],
    what: str,
    *,
    timeout: float,
    ok: Callable[[T], bool] = bool,
    transient: tuple[type[BaseException], ...] = (),
    interval: float = 0.002,
    max_interval: float = 0.1,
    hint: str | None = None,
) -> T:
    """Call ``probe`` until ``ok(result)`` holds; return that result.

    Exceptions of the ``transient`` types count as "not yet"; any other
    propagates at once.  On timeout raise :class:`WaitTimeout` naming ``what``,
    the last result or error seen, and ``hint``.
    """
    poll = Poll(timeout, interval, max_interval)
    last: object = None
    for _ in poll:
        try:
            result = probe()
        except transient as exc:
            last = exc
            continue
        if ok(result):
            return result
        last = result
    raise WaitTimeout(_timeout_message(what, poll, last, hint))


async def async_wait_until(
    probe: Callable[[], Awaitable[T]],
    what: str,
    *,
    timeout: float,
    ok: Callable[[T], bool] = bool,
    transient: tuple[type[BaseException], ...] = (),
    interval: float = 0.002,
    max_interval: float = 0.1,
    hint: str | None = None,
) -> T:
    """The async form of :func:`wait_until` (same schedule, same message)."""
    poll = Poll(timeout, interval, max_interval)
    last: object = None
    async for _ in poll.aiter():
        try:
            result = await probe()
        except transient as exc:
            last = exc
            continue
        if ok(result):
            return result
        last = result
    raise WaitTimeout(_timeout_message(what, poll, last, hint))
