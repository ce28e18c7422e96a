"""The transactional outbox in PostgreSQL: :func:`enqueue` writes events in the caller's transaction;
:class:`PostgresOutbox` is the relay's :class:`~aegis_service.audit.Outbox`.

The relay's claim locks a batch (``FOR UPDATE SKIP LOCKED``, so several instances share the work) and
marks it published in the same transaction. It wakes on ``NOTIFY outbox_events`` (a trigger on insert).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import psycopg

from aegis_service.adapters.postgres.db import AsyncConn, connect
from aegis_service.domain.errors import Unavailable, first_line
from aegis_service.domain.events import OutgoingEvent

CHANNEL = "outbox_events"

# %b: binary parameters (arrays dump much faster than as quoted text; see audit_events).
_INSERT = """
INSERT INTO outbox_events (event_id, subject, body)
SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[])
"""
_CLAIM = """
SELECT id, event_id, subject, body FROM outbox_events
WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_MARK = "UPDATE outbox_events SET published_at = now() WHERE id = ANY(%b)"

#: What a lost or refused database connection raises (``OSError``: a socket that broke underneath).
_FAILURES = (psycopg.Error, OSError)


async def enqueue(conn: AsyncConn, events: Sequence[OutgoingEvent]) -> None:
    """Add ``events`` to the outbox inside the caller's transaction."""
    await conn.execute(
        _INSERT,
        ([e.event_id for e in events], [e.subject for e in events], [e.body for e in events]),
    )


class PostgresOutbox:
    """Two connections of its own: one for the claims, one listening for ``NOTIFY``."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: AsyncConn | None = None
        self._listener: AsyncConn | None = None

    async def open(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await connect(self._dsn)
            if self._listener is None or self._listener.closed:
                self._listener = await connect(self._dsn, autocommit=True)
                await self._listener.execute(f"LISTEN {CHANNEL}")
        except _FAILURES as exc:
            raise Unavailable(first_line(exc)) from exc

    async def close(self) -> None:
        for conn in (self._conn, self._listener):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._conn = self._listener = None

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[list[OutgoingEvent]]:
        conn = self._conn
        assert conn is not None
        try:
            async with conn.transaction():
                cursor = await conn.execute(_CLAIM, (limit,))
                rows = await cursor.fetchall()
                yield [OutgoingEvent(str(r[1]), str(r[2]), bytes(r[3])) for r in rows]
                if rows:
                    await conn.execute(_MARK, ([r[0] for r in rows],))
        except _FAILURES as exc:
            raise Unavailable(first_line(exc)) from exc

    async def wait_for_work(self, timeout: float) -> None:
        assert self._listener is not None
        try:
            async for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
        except _FAILURES as exc:
            raise Unavailable(first_line(exc)) from exc
