"""The order -> outbox -> JetStream -> audit pipeline, end to end, against real servers: a NATS
server with TLS and user/password auth, PostgreSQL, Redis, and both services as their own
processes.  Every order placed is audited exactly once, whatever happens meanwhile (NATS killed,
the audit service crashed, Redis frozen), and both services refuse a wrong password and an
untrusted certificate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from pytest_aegis import (
    AppProcess,
    NatsServer,
    assert_app_refuses_to_start,
    assert_event_persisted,
    assert_no_event_lost,
    wait_until,
)

# Every test: the session's TLS + user/password + JetStream server (unless it starts its own).
pytestmark = pytest.mark.nats_secure(tls=True, auth="userpass")

#: Where the audit service records events, and their id column.
TABLE, COLUMN = "audit_events", "event_id"
#: Seconds the audit may take to catch up after a fault (NATS back, a consumer restarted).
CATCH_UP = 60.0


async def place(orders: AppProcess, n: int, *, concurrency: int = 50, prefix: str | None = None) -> list[str]:
    """Place ``n`` orders at once (``concurrency`` in flight), each with its own idempotency key;
    their ids.  Every one must be taken (201)."""
    prefix = prefix or uuid.uuid4().hex[:8]
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=str(orders.http_url), timeout=30) as http:

        async def one(i: int) -> str:
            async with limit:
                reply = await http.post(
                    "/orders", json={"item": f"widget-{i}", "quantity": 1 + i % 5},
                    headers={"Idempotency-Key": f"{prefix}-{i}"},
                )  # fmt: skip
            assert reply.status_code == 201, reply.text
            return str(reply.json()["order_id"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def audited_exactly_once(postgres_db: Any, ids: list[str], within: float = CATCH_UP) -> None:
    """Every order of ``ids`` is in the audit table once, and nothing else is."""
    await assert_no_event_lost(postgres_db.dsn, ids, within=within, strict=True, table=TABLE, column=COLUMN)


def recorded(postgres_db: Any) -> int:
    with postgres_db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
    return int(row[0])


@pytest.mark.asyncio
async def test_an_order_is_audited_once_and_a_retried_request_is_the_same_order(
    aegis_app_factory: Callable[..., AppProcess], postgres_db: Any
) -> None:
    orders = aegis_app_factory(app="orders")  # Redis starts first: orders depends on it
    aegis_app_factory(app="audit")
    async with httpx.AsyncClient(base_url=str(orders.http_url)) as http:
        body, key = {"item": "widget", "quantity": 2}, {"Idempotency-Key": "order-1"}
        first = await http.post("/orders", json=body, headers=key)
        again = await http.post("/orders", json=body, headers=key)
    assert first.status_code == 201, first.text
    assert again.status_code == 200 and again.json() == {
        "order_id": first.json()["order_id"],
        "duplicate": True,
    }
    await assert_event_persisted(postgres_db.dsn, first.json()["order_id"], table=TABLE, column=COLUMN)
    await audited_exactly_once(postgres_db, [first.json()["order_id"]])


@pytest.mark.asyncio
async def test_two_hundred_concurrent_orders_are_audited_exactly_once(
    aegis_app_factory: Callable[..., AppProcess], postgres_db: Any
) -> None:
    started = aegis_app_factory.start_set("orders", "audit")  # type: ignore[attr-defined]
    ids = await place(started["orders"], 200)
    await audited_exactly_once(postgres_db, ids)


@pytest.mark.asyncio
async def test_orders_taken_while_nats_is_down_are_audited_once_it_is_back(
    aegis_app_factory: Callable[..., AppProcess],
    nats_server_factory: Callable[..., NatsServer],
    postgres_db: Any,
) -> None:
    nats = nats_server_factory(tls=True, auth="userpass")  # its own server: this test kills it
    orders = aegis_app_factory(app="orders", nats=nats)
    aegis_app_factory(app="audit", nats=nats)
    before = await place(orders, 100)
    nats.kill()  # mid-burst: the first half may not all be relayed yet
    during = await place(orders, 100)  # the outbox takes them; the relay waits for NATS
    nats.restart()
    await audited_exactly_once(postgres_db, before + during)


@pytest.mark.asyncio
async def test_events_the_audit_service_had_not_acknowledged_when_it_crashed_are_stored_once(
    aegis_app_factory: Callable[..., AppProcess], postgres_db: Any
) -> None:
    orders = aegis_app_factory(app="orders")
    audit = aegis_app_factory(app="audit")
    first = await place(orders, 100)
    wait_until(lambda: recorded(postgres_db), "the audit service to record an event", timeout=CATCH_UP)
    audit.kill()  # mid-stream: a batch may be stored and not yet acknowledged
    second = await place(orders, 100)
    audit.restart()  # the durable consumer redelivers what was not acknowledged
    await audited_exactly_once(postgres_db, first + second)


@pytest.mark.asyncio
async def test_with_redis_frozen_an_order_is_refused_and_its_retry_is_taken_once_redis_is_back(
    aegis_app_factory: Callable[..., AppProcess], postgres_db: Any
) -> None:
    started = aegis_app_factory.start_set("orders", "audit")  # type: ignore[attr-defined]
    orders, redis = started["orders"], started["redis"]
    body, key = {"item": "widget", "quantity": 1}, {"Idempotency-Key": "frozen-1"}
    async with httpx.AsyncClient(base_url=str(orders.http_url), timeout=30) as http:
        redis.pause()
        refused = await http.post("/orders", json=body, headers=key)
        redis.resume()
        taken = await http.post("/orders", json=body, headers=key)
    assert refused.status_code == 503 and "idempotency store unavailable" in refused.text
    assert taken.status_code == 201 and taken.json()["duplicate"] is False  # the first never claimed the key
    await audited_exactly_once(postgres_db, [taken.json()["order_id"]])


@pytest.fixture(scope="session")
def untrusted_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The certificate of a CA that did not sign the server's."""
    path = tmp_path_factory.mktemp("untrusted") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.mark.parametrize("app", ["orders", "audit"])
def test_a_wrong_password_is_refused_and_the_service_does_not_start(
    aegis_app_factory: Callable[..., AppProcess], postgres_db: Any, app: str
) -> None:
    refusal = assert_app_refuses_to_start(
        aegis_app_factory, reason="auth", app=app, env={"AEGIS_NATS_PASSWORD": "wrong"}
    )
    assert refusal.exit_code == 1


@pytest.mark.parametrize("app", ["orders", "audit"])
def test_an_untrusted_server_certificate_is_refused_and_the_service_does_not_start(
    aegis_app_factory: Callable[..., AppProcess], postgres_db: Any, untrusted_ca: Path, app: str
) -> None:
    refusal = assert_app_refuses_to_start(
        aegis_app_factory, reason="tls", app=app, env={"AEGIS_NATS_TLS_CA": str(untrusted_ca)}
    )
    assert refusal.exit_code == 1
