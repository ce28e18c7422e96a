"""The audit pipeline's use cases and the ports they own.

- Access grants: each change and its audit event commit together (:class:`GrantStore`, a transactional
  outbox behind it); stored events are read a page at a time (:class:`EventQuery`).
- :class:`OutboxRelay`: locks a batch of pending outbox events, publishes them, waits for every ack, then
  marks them published in the same transaction. Any failure rolls back: the events are published again
  later, and the stream's duplicate window plus the consumer's idempotent insert absorb the repeat.
- :class:`AuditConsumer`: fetches a batch, stores it once (:class:`EventStore`), acks each message only
  after the commit. Malformed messages are dead-lettered in the same transaction and acked; with the
  database away nothing is acked: the batch is NAKed with a delay and fetching pauses until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from aegis_service.backoff import full_jitter
from aegis_service.domain.audit import AccessGrantInput, AccessGrantOut, AuditEventPage, AuditFilter
from aegis_service.domain.errors import Unavailable, first_line
from aegis_service.domain.events import OutgoingEvent, Rejected, StorableEvent, parse_event
from aegis_service.domain.models import utc_now
from aegis_service.metrics import Metrics, NoMetrics

logger = logging.getLogger(__name__)

RELAY_BATCH = 500
PUBLISH_TIMEOUT = 5.0
FETCH_TIMEOUT = 1.0
NAK_DELAY = 1.0

# -- ports --------------------------------------------------------------------------------------------


class GrantStore(Protocol):
    """Port: access grants, each change written with its audit event in one transaction."""

    async def create(self, grant: AccessGrantInput) -> AccessGrantOut:
        """Grant (event ``access_grant.created``); :class:`Conflict` when the same grant exists."""
        ...

    async def revoke(self, grant_id: uuid.UUID) -> AccessGrantOut:
        """Revoke (event ``access_grant.revoked``); :class:`NotFound` when there is no such grant."""
        ...


class EventQuery(Protocol):
    """Port: the stored audit events, read in storage order."""

    async def page(self, query: AuditFilter) -> AuditEventPage: ...


class Outbox(Protocol):
    """Port: events written with the changes that caused them, waiting to be published.

    Every method raises :class:`Unavailable` when the outbox cannot be reached."""

    async def open(self) -> None:
        """Connect (again) if not connected."""
        ...

    def claim(self, limit: int) -> AbstractAsyncContextManager[list[OutgoingEvent]]:
        """Lock up to ``limit`` pending events (others skip them) for the block; leaving it normally marks
        them published, an exception leaves them pending."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new events are written, or after ``timeout`` seconds."""
        ...

    async def close(self) -> None: ...


class EventPublisher(Protocol):
    """Port: the stream the events go to; an event id is published at most once per duplicate window."""

    async def publish(self, events: Sequence[OutgoingEvent], timeout: float) -> None:
        """Return once the stream acknowledged every event; else :class:`Unavailable`."""
        ...

    async def close(self) -> None: ...


class Delivery(Protocol):
    """A message fetched from the stream, to acknowledge once handled."""

    @property
    def subject(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    async def ack(self) -> None: ...

    async def nak(self, delay: float) -> None: ...


class EventFeed(Protocol):
    async def fetch(self, batch: int, timeout: float) -> Sequence[Delivery]:
        """Up to ``batch`` messages; empty when none came within ``timeout``."""
        ...

    async def stop(self) -> None:
        """Stop fetching; messages fetched and not acknowledged are redelivered."""
        ...


class EventSource(Protocol):
    """Port: the durable consumer of the stream."""

    @property
    def name(self) -> str:
        """For log lines, e.g. ``AUDIT/audit-store``."""
        ...

    async def subscribe(self) -> EventFeed: ...


class EventStore(Protocol):
    """Port: the table of stored events (each event id once) and of dead letters."""

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None:
        """:class:`Unavailable` when the database cannot be reached."""
        ...

    async def store(self, events: Sequence[StorableEvent], rejected: Sequence[Rejected]) -> list[Rejected]:
        """Store the events and dead-letter ``rejected`` in one transaction; return every dead letter
        written (events the database refuses are dead-lettered too). :class:`Unavailable` when the
        database is lost: then nothing is stored."""
        ...

    async def close(self) -> None: ...


# -- use cases ----------------------------------------------------------------------------------------


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        publisher: EventPublisher,
        *,
        poll_interval: float,
        batch: int = RELAY_BATCH,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._poll_interval = poll_interval
        self._batch = batch
        self._publish_timeout = publish_timeout
        self.last_error: str | None = None

    async def run(self) -> None:
        failures = 0
        try:
            while True:
                try:
                    await self._outbox.open()
                    if await self._relay_batch() < self._batch:
                        await self._outbox.wait_for_work(self._poll_interval)
                    failures = 0
                except Unavailable as exc:
                    failures += 1
                    self.last_error = exc.message
                    delay = full_jitter(failures - 1, 0.1, 2.0)
                    logger.warning("outbox relay: %s; retrying in %.2fs", self.last_error, delay)
                    await self._outbox.close()
                    await asyncio.sleep(delay)
        finally:
            await self._outbox.close()
            await self._publisher.close()

    async def _relay_batch(self) -> int:
        """Publish and mark one batch; return its size."""
        async with self._outbox.claim(self._batch) as events:
            if not events:
                return 0
            await self._publisher.publish(events, self._publish_timeout)
        self.last_error = None
        return len(events)


class AuditConsumer:
    def __init__(
        self,
        source: EventSource,
        store: EventStore,
        *,
        batch: int,
        max_event_bytes: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._source = source
        self._store = store
        self._metrics = metrics or NoMetrics()
        self._batch = batch
        self._max_event_bytes = max_event_bytes
        self.db_available = False
        self.last_error: str | None = None

    async def run(self) -> None:
        """Fetch the next batch while the current one is being stored (one fetch in flight at most)."""
        feed: EventFeed | None = None
        prefetch: asyncio.Task[Sequence[Delivery]] | None = None
        try:
            while True:
                if feed is None:
                    feed = await self._subscribe()
                    continue
                await self._ensure_store()
                msgs = await (prefetch or self._fetch(feed))
                prefetch = asyncio.create_task(self._fetch(feed)) if msgs else None
                if msgs:
                    await self._handle(msgs)
        finally:
            if prefetch is not None:  # fetched but not stored: redelivered after ack_wait
                prefetch.cancel()
                with contextlib.suppress(BaseException):
                    await prefetch
            if feed is not None:
                with contextlib.suppress(Exception):
                    await feed.stop()
            await self._store.close()

    async def _fetch(self, feed: EventFeed) -> Sequence[Delivery]:
        """The next batch; empty when none came within the fetch timeout or the fetch failed."""
        try:
            return await feed.fetch(self._batch, timeout=FETCH_TIMEOUT)
        except Exception as exc:  # disconnected, consumer deleted, ...
            self.last_error = f"fetch failed: {first_line(exc)}"
            logger.warning("audit consumer: %s", self.last_error)
            await asyncio.sleep(full_jitter(1, 0.1, 1.0))
            return []

    async def _subscribe(self) -> EventFeed | None:
        try:
            return await self._source.subscribe()
        except Exception as exc:
            self.last_error = f"cannot bind to {self._source.name}: {first_line(exc)}"
            logger.warning("audit consumer: %s", self.last_error)
            await asyncio.sleep(full_jitter(1, 0.1, 1.0))
            return None

    async def _ensure_store(self) -> None:
        """Return with the store connected, waiting (with backoff) for as long as the database is away."""
        attempt = 0
        while not self._store.connected:
            try:
                await self._store.connect()
                self.db_available = True
                if attempt:
                    logger.info("audit consumer: database is back after %d attempt(s)", attempt)
            except Unavailable as exc:
                self._mark_db_down(exc)
                attempt += 1
                await asyncio.sleep(full_jitter(attempt, 0.1, 2.0))

    def _mark_db_down(self, exc: Unavailable) -> None:
        if self.db_available:
            logger.warning("audit consumer: database unavailable (%s); not acking", exc.message)
        self.db_available = False
        self.last_error = f"database unavailable: {exc.message}"

    async def _handle(self, msgs: Sequence[Delivery]) -> None:
        now = utc_now()
        max_bytes = self._max_event_bytes
        events: list[StorableEvent] = []
        rejected: list[Rejected] = []
        for msg in msgs:
            parsed = parse_event(msg.subject, msg.data, max_bytes, now)
            if isinstance(parsed, StorableEvent):
                events.append(parsed)
            else:
                rejected.append(parsed)
        try:
            dead = await self._store.store(events, rejected)
        except Unavailable as exc:
            self._mark_db_down(exc)
            await self._store.close()
            await _settle(msgs, ack=False)
            return
        for item in dead:
            logger.info("audit consumer: dead-lettered a message on %s: %s", item.subject, item.reason)
            self._metrics.audit_dead_lettered(item.code)
        await _settle(msgs, ack=True)


async def _settle(msgs: Sequence[Delivery], *, ack: bool) -> None:
    """Ack (after a commit) or NAK with a delay (database away) every message of a batch."""
    try:
        for msg in msgs:
            if ack:
                await msg.ack()
            else:
                await msg.nak(delay=NAK_DELAY)
    except Exception as exc:  # NATS gone meanwhile: the messages are redelivered, the insert is idempotent
        logger.warning("audit consumer: could not %s: %s", "ack" if ack else "nak", first_line(exc))
