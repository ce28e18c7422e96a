"""Transactional outbox: :func:`enqueue` writes events in the caller's transaction; :class:`OutboxRelay`
publishes pending rows to JetStream and marks them published.

The relay locks a batch (``FOR UPDATE SKIP LOCKED``, so several instances share the work), publishes
it with ``Nats-Msg-Id`` = event id, waits for every ack, then marks the rows in the same transaction.
A crash or a failure between publishing and committing leaves the rows pending: they are published
again, and the stream's duplicate window (plus the consumer's idempotent insert) absorbs the repeat.
It wakes on ``NOTIFY outbox_events`` (a trigger on insert) and polls every ``poll_interval`` anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import nats.errors
import psycopg
from nats.aio.client import Client

from aegis_service.backoff import full_jitter
from aegis_service.db import AsyncConn, connect, first_line
from aegis_service.events import OutgoingEvent
from aegis_service.publish import BatchPublisher, PublishFailed

logger = logging.getLogger(__name__)

CHANNEL = "outbox_events"
BATCH = 500
PUBLISH_TIMEOUT = 5.0

# %b: binary parameters (arrays dump much faster than as quoted text; see audit_consumer).
_INSERT = """
INSERT INTO outbox_events (event_id, subject, body)
SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[])
"""
_CLAIM = """
SELECT id, event_id, subject, body FROM outbox_events
WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_MARK = "UPDATE outbox_events SET published_at = now() WHERE id = ANY(%b)"


async def enqueue(conn: AsyncConn, events: Sequence[OutgoingEvent]) -> None:
    """Add ``events`` to the outbox inside the caller's transaction."""
    await conn.execute(
        _INSERT,
        ([e.event_id for e in events], [e.subject for e in events], [e.body for e in events]),
    )


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        client: Callable[[], Client],
        *,
        poll_interval: float,
        batch: int = BATCH,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self._dsn = dsn
        self._client = client
        self._publisher: BatchPublisher | None = None
        self._poll_interval = poll_interval
        self._batch = batch
        self._publish_timeout = publish_timeout
        self._conn: AsyncConn | None = None
        self._listener: AsyncConn | None = None
        self.published = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        failures = 0
        try:
            while True:
                try:
                    await self._connect()
                    if await self._relay_batch() < self._batch:
                        await self._wait_for_work()
                    failures = 0
                except (psycopg.Error, PublishFailed, nats.errors.Error, OSError) as exc:
                    failures += 1
                    self.last_error = first_line(exc)
                    delay = full_jitter(failures - 1, 0.1, 2.0)
                    logger.warning("outbox relay: %s; retrying in %.2fs", self.last_error, delay)
                    await self._disconnect()
                    await asyncio.sleep(delay)
        finally:
            await self._disconnect()
            if self._publisher is not None:
                with contextlib.suppress(Exception):
                    await self._publisher.stop()

    async def _connect(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self._dsn)
        if self._listener is None or self._listener.closed:
            self._listener = await connect(self._dsn, autocommit=True)
            await self._listener.execute(f"LISTEN {CHANNEL}")

    async def _disconnect(self) -> None:
        for conn in (self._conn, self._listener):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._conn = self._listener = None

    async def _wait_for_work(self) -> None:
        assert self._listener is not None
        async for _ in self._listener.notifies(timeout=self._poll_interval, stop_after=1):
            pass

    async def _relay_batch(self) -> int:
        """Publish and mark one batch; return its size."""
        conn = self._conn
        assert conn is not None
        async with conn.transaction():
            cursor = await conn.execute(_CLAIM, (self._batch,))
            rows = await cursor.fetchall()
            if not rows:
                return 0
            await self._publish([(str(r[2]), bytes(r[3]), {"Nats-Msg-Id": str(r[1])}) for r in rows])
            await conn.execute(_MARK, ([r[0] for r in rows],))
        self.published += len(rows)
        self.last_error = None
        return len(rows)

    async def _publish(self, messages: Sequence[tuple[str, bytes, dict[str, str]]]) -> None:
        if self._publisher is None:
            publisher = BatchPublisher(self._client())
            await publisher.start()
            self._publisher = publisher
        await self._publisher.publish(messages, timeout=self._publish_timeout)
