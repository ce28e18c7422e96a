"""Shared by the audit-pipeline tests: a service wired to its own JetStream server and a migrated
database, and publishing events straight to the AUDIT stream (as another producer would)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
import psycopg

from pytest_aegis import AppProcess, NatsServer

FAST_AUDIT = {"AEGIS_AUDIT_ACK_WAIT": "2", "AEGIS_OUTBOX_POLL_INTERVAL": "0.2"}


@dataclass
class AuditStack:
    nats: NatsServer
    dsn: str
    app: AppProcess

    def http(self) -> httpx.AsyncClient:
        assert self.app.http_url is not None
        return httpx.AsyncClient(base_url=self.app.http_url, timeout=10)


def event(
    event_type: str = "test.happened", event_id: str | None = None, **extra: object
) -> tuple[str, bytes]:
    event_id = event_id or str(uuid.uuid4())
    doc = {"id": event_id, "type": event_type, "occurredAt": "2026-11-22T03:00:00Z", "data": extra}
    return event_id, json.dumps(doc).encode()


async def publish(js, events: Iterable[tuple[str, bytes]], subject: str = "audit.test.happened") -> list[str]:
    """Publish each ``(event_id, body)`` with ``Nats-Msg-Id``, all acks awaited; return the ids."""
    ids = []
    futures = []
    for event_id, body in events:
        ids.append(event_id)
        # A deadline for each ack, not nats-py's 5 s: thousands in flight at once on a busy machine
        # (a replicated stream, a node just killed) may take longer, and none may be lost.
        futures.append(js.publish(subject, body, timeout=60, headers={"Nats-Msg-Id": event_id}))
    await asyncio.gather(*futures)
    return ids


def count_rows(dsn: str, table: str = "audit_events") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0])


def new_database(server, name: str) -> str:
    """Create ``name`` on ``server`` (an unshared server of ``postgres_server_factory``), migrate it,
    return its DSN."""
    from aegis_service.migrations import upgrade

    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = server.dsn_for(name)
    upgrade(dsn)
    return dsn


async def consumer_info(js):
    return await js.consumer_info("AUDIT", "audit-store")


async def wait_all_acked(js, last_seq: int, timeout: float = 10.0):
    """Acks leave after the commit, so the rows can be visible a moment before the ack floor moves."""
    from pytest_aegis.waiting import async_wait_until

    return await async_wait_until(
        lambda: consumer_info(js),
        f"the consumer to ack up to stream sequence {last_seq}",
        timeout=timeout,
        ok=lambda info: info.ack_floor.stream_seq == last_seq and info.num_ack_pending == 0,
    )
