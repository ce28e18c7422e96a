"""The ingest app (app.py) against a real NATS server (TLS, mutual TLS, user/password, JetStream)
and a real PostgreSQL: each test gets its own database (``postgres_db``), migrated, and the app
is wired to it (``AEGIS_DATABASE_URL`` -> ``INGEST_DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import pytest
from nats.aio.client import Client

from pytest_aegis import (
    AppProcess,
    PostgresDatabase,
    assert_app_refuses_to_start,
    assert_consumer_drained,
    assert_no_event_lost,
)

#: The server every test here runs against: TLS, a client certificate required, user/password.
secured = pytest.mark.nats_secure(auth="userpass", tls=True, mtls=True)

STREAM, DURABLE = "EVENTS", "ingest"


def new_events(n: int) -> list[dict[str, object]]:
    return [{"id": str(uuid.uuid4()), "kind": "order.created", "data": {"n": i}} for i in range(n)]


async def publish(nc: Client, events: list[dict[str, object]]) -> None:
    """Publish to JetStream, each publish acknowledged by the stream (so it is stored)."""
    js = nc.jetstream()
    acks = await asyncio.gather(
        *(js.publish(f"events.{event['kind']}", json.dumps(event).encode(), timeout=10) for event in events)
    )
    assert all(ack.stream == STREAM for ack in acks)


@pytest.mark.asyncio
@secured
async def test_every_event_is_stored_exactly_once(
    postgres_db: PostgresDatabase, aegis_app: AppProcess, nats_client: Client
) -> None:
    assert aegis_app.health_reply["checks"] == {"database": "ok"}
    events = new_events(500)
    await publish(nats_client, events)
    ids = [str(event["id"]) for event in events]
    await assert_no_event_lost(
        postgres_db.dsn, ids, table="events", column="event_id", strict=True, within=30
    )


@pytest.mark.asyncio
@secured
async def test_an_event_delivered_twice_is_stored_once(
    postgres_db: PostgresDatabase, aegis_app: AppProcess, nats_client: Client
) -> None:
    events = new_events(100)
    await publish(nats_client, events)
    await publish(nats_client, events)  # a producer that retried: the stream holds each event twice
    info = await assert_consumer_drained(nats_client, STREAM, DURABLE, at_least=2 * len(events), within=30)
    assert info.num_redelivered == 0  # no insert failed
    ids = [str(event["id"]) for event in events]
    await assert_no_event_lost(postgres_db.dsn, ids, table="events", column="event_id", strict=True)


@secured
def test_without_a_client_certificate_the_app_is_refused(
    postgres_db: PostgresDatabase, aegis_app_factory: Callable[..., AppProcess]
) -> None:
    # Everything else is right (the database too): only the client certificate is missing.
    refusal = assert_app_refuses_to_start(
        aegis_app_factory, reason="tls", env={"INGEST_NATS_CERT": "", "INGEST_NATS_KEY": ""}
    )
    assert "didn't provide a certificate" in "\n".join(refusal.server_lines)
    assert refusal.exit_code == 1
