"""Who closes the clients the harness hands out: the harness, after the test.

A client a test gets from ``connect()`` (of a NATS server, a cluster, a fault proxy, a PostgreSQL
database) and does not close is closed when the test's call ends, before any fixture is torn down,
so a forgotten client never outlives its test: no socket left to the next test's warnings, no
connection holding a server a fixture is about to stop.  Closing it yourself stays fine (closing
twice is a no-op).  Clients opened while fixtures are set up are not tracked: a fixture closes
what it opened (the plugin's own fixtures do)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["closed_after", "hand_out", "hand_out_nats"]

#: What closes each client handed out during the running test's call (``None``: no call running).
_closers: list[Callable[[], None]] | None = None


class Closeable(Protocol):
    """A blocking client: a psycopg connection."""

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


def hand_out(client: Closeable) -> None:
    """Close ``client`` after the running test's call, if it is still open then."""
    if _closers is not None:
        _closers.append(lambda: None if client.closed else client.close())


def hand_out_nats(client: Client) -> None:
    """Close the nats-py ``client`` after the running test's call, on the event loop it was made
    on (the test's loop, idle by then).  A client whose loop is gone already (made inside an
    ``asyncio.run()`` of its own) died with it."""
    if _closers is None:
        return
    loop = asyncio.get_running_loop()

    def close() -> None:
        if not (client.is_closed or loop.is_closed() or loop.is_running()):
            loop.run_until_complete(client.close())

    _closers.append(close)


@contextmanager
def closed_after() -> Iterator[None]:
    """Around a test's call: every client handed out meanwhile is closed at its end, newest first
    (nested: a test that runs an inner pytest session in its process keeps its own)."""
    global _closers
    outer, _closers = _closers, []
    try:
        yield
    finally:
        closers, _closers = _closers, outer
        for close in reversed(closers):
            close()
