"""Wiring of the audit pipeline (on only with ``AEGIS_DATABASE_URL``): the pool for HTTP, the
``AUDIT`` stream and consumer, the outbox relay and the consumer tasks, and their routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
import nats.js.errors
from fastapi import APIRouter
from nats.aio.client import Client
from nats.js import JetStreamContext

from aegis_service.audit_api import create_audit_router
from aegis_service.audit_consumer import AuditConsumer
from aegis_service.audit_stream import ensure_consumer, ensure_stream
from aegis_service.connection import NatsConnection, describe_error
from aegis_service.db import Database
from aegis_service.errors import Unavailable
from aegis_service.grants import GrantRepository
from aegis_service.outbox import OutboxRelay
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)

#: How many fetched-but-unacked messages the server lets the consumer hold, in batches.
ACK_PENDING_BATCHES = 10
_TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError)


class AuditPipeline:
    def __init__(self, settings: Settings, connection: NatsConnection) -> None:
        assert settings.database_url is not None
        dsn = settings.database_url.get_secret_value()
        self._settings = settings
        self._connection = connection
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.database = Database(dsn)
        self.grants = GrantRepository(self.database, f"{settings.service_name}/{settings.instance_id}")
        self.relay = OutboxRelay(dsn, self.client, poll_interval=settings.outbox_poll_interval)
        self.consumer = AuditConsumer(
            dsn,
            self.client,
            batch=settings.audit_batch_size,
            max_event_bytes=settings.audit_max_event_bytes,
        )

    def client(self) -> Client:
        """The service's NATS connection (one for the process; it is not replaced once connected)."""
        return self._connection.client

    def jetstream(self) -> JetStreamContext:
        """One context for the process, for the stream and consumer set-up (publishing and fetching
        go through :mod:`aegis_service.publish` and :mod:`aegis_service.pull` on :meth:`client`)."""
        if self._js is None:
            self._js = self._connection.client.jetstream(timeout=self._settings.request_timeout)
        return self._js

    async def set_up_stream(self) -> None:
        """Create the stream and the durable consumer if absent; transient NATS errors are retried."""
        s = self._settings
        try:
            await ensure_stream(self.jetstream(), s.audit_duplicate_window)
            await ensure_consumer(
                self.jetstream(), s.audit_ack_wait, ACK_PENDING_BATCHES * s.audit_batch_size
            )
        except _TRANSIENT as exc:
            raise Unavailable(describe_error(exc)) from None

    async def open(self) -> None:
        await self.database.open()

    def routers(self) -> list[APIRouter]:
        return [create_audit_router(self.database, self.grants)]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.relay.run(), name="outbox-relay"),
            asyncio.create_task(self.consumer.run(), name="audit-consumer"),
        ]

    async def stop(self, timeout: float) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)
        self._tasks = []
        await self.database.close()
