"""orders: takes orders over HTTP, stores each with an outbox row in one PostgreSQL transaction,
and relays the outbox to JetStream.

* ``POST /orders`` with ``{"item": "...", "quantity": N}`` and an ``Idempotency-Key`` header:
  ``201 {"order_id": ..., "duplicate": false}``; the same key again (a client that retried):
  ``200`` with the first order's id and ``"duplicate": true``, nothing stored twice.  The keys live
  in Redis (``SET NX`` of the order id, one day); when Redis does not answer within a second:
  ``503``.  Such a claim may still land later (a frozen Redis runs it once thawed): a retry then
  finds an order id without an order, and places the order under that id.
* ``GET /healthz``: ``200`` when NATS, PostgreSQL and Redis all answer, else ``503`` naming which.
* The relay publishes every unsent outbox row to ``orders.created`` with the row's event id as
  ``Nats-Msg-Id`` (JetStream drops a second copy within its duplicate window), and marks the row
  sent once JetStream acknowledged it.  While NATS is down orders are still taken; the relay
  catches up when it is back.  One relay per database is assumed (a second instance would need
  ``FOR UPDATE SKIP LOCKED``).

Configuration (the test suite maps the harness's variables onto these, see pyproject.toml):
``ORDERS_NATS_URL``, ``ORDERS_NATS_USER``, ``ORDERS_NATS_PASSWORD``, ``ORDERS_NATS_CA``,
``ORDERS_DATABASE_URL``, ``ORDERS_REDIS_URL``, ``ORDERS_HTTP_BIND`` (``host:port``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Annotated, Any

import nats.errors
import psycopg
import redis.asyncio
import uvicorn
from common import SUBJECT_PREFIX, NatsSettings, connect_jetstream, required
from fastapi import FastAPI, Header, HTTPException, Response
from nats.aio.client import Client
from nats.js.client import JetStreamContext
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

SUBJECT = f"{SUBJECT_PREFIX}.created"
#: Seconds an idempotency key is remembered.
KEY_TTL = 24 * 3600
#: Outbox rows one relay round publishes.
BATCH = 100


class OrderIn(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class Relay:
    """Publishes the outbox to JetStream; :attr:`wake` is set when a new row is committed."""

    def __init__(self, pool: AsyncConnectionPool, js: JetStreamContext) -> None:
        self.pool = pool
        self.js = js
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                sent = await self.send_batch()
            except (nats.errors.Error, TimeoutError, psycopg.Error) as exc:
                print(f"orders: relay: {exc!r}; trying again", file=sys.stderr, flush=True)
                await asyncio.sleep(0.2)
                continue
            if sent < BATCH:  # caught up: wait for the next order (or look again in a second)
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except TimeoutError:
                    pass

    async def send_batch(self) -> int:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, event_id, subject, payload FROM outbox WHERE sent_at IS NULL "
                "ORDER BY id LIMIT %s",
                (BATCH,),
            )
            rows = await cursor.fetchall()
            for row_id, event_id, subject, payload in rows:
                await self.js.publish(
                    subject, json.dumps(payload).encode(), headers={"Nats-Msg-Id": event_id}
                )
                await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = %s", (row_id,))
        return len(rows)


def make_app(nc: Client, pool: AsyncConnectionPool, cache: redis.asyncio.Redis, relay: Relay) -> FastAPI:
    app = FastAPI(title="orders")

    @app.post("/orders", status_code=201)
    async def place(
        order: OrderIn, response: Response, idempotency_key: Annotated[str, Header(min_length=1)]
    ) -> dict[str, Any]:
        key = f"idempotency:{idempotency_key}"
        try:
            claimed = await cache.set(key, uuid.uuid4().hex, nx=True, ex=KEY_TTL)
            order_id = str(await cache.get(key))
        except redis.RedisError as exc:
            # Ambiguous: the claim may still land (a frozen Redis runs it once thawed). A retry with
            # the same key then finds an order id with no order, and places it (below).
            raise HTTPException(503, f"idempotency store unavailable: {exc!r}") from None
        try:
            async with pool.connection() as conn, conn.transaction():
                if not claimed:  # a retry: the same order if it was stored, else this one places it
                    cursor = await conn.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,))
                    if await cursor.fetchone() is not None:
                        response.status_code = 200
                        return {"order_id": order_id, "duplicate": True}
                await conn.execute(
                    "INSERT INTO orders (order_id, item, quantity) VALUES (%s, %s, %s)",
                    (order_id, order.item, order.quantity),
                )
                payload = {"order_id": order_id, "item": order.item, "quantity": order.quantity}
                await conn.execute(
                    "INSERT INTO outbox (event_id, subject, payload) VALUES (%s, %s, %s)",
                    (order_id, SUBJECT, Jsonb(payload)),
                )
        except psycopg.errors.UniqueViolation:  # a concurrent retry of the same request placed it
            response.status_code = 200
            return {"order_id": order_id, "duplicate": True}
        except psycopg.Error as exc:  # nothing stored: a retry with the same key places it
            raise HTTPException(503, f"database unavailable: {exc!r}") from None
        relay.wake.set()
        return {"order_id": order_id, "duplicate": False}

    @app.get("/healthz")
    async def healthz(response: Response) -> dict[str, Any]:
        checks = {"nats": "ok" if nc.is_connected else "disconnected"}
        try:
            async with pool.connection(timeout=1) as conn:
                await conn.execute("SELECT 1")
            checks["database"] = "ok"
        except (psycopg.Error, TimeoutError) as exc:
            checks["database"] = repr(exc)
        try:
            await cache.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = repr(exc)
        healthy = all(value == "ok" for value in checks.values())
        response.status_code = 200 if healthy else 503
        return {"status": "healthy" if healthy else "unhealthy", "checks": checks}

    return app


async def main() -> int:
    settings = NatsSettings.from_env("ORDERS")
    database_url = required("ORDERS_DATABASE_URL")
    redis_url = required("ORDERS_REDIS_URL")
    host, _, port = required("ORDERS_HTTP_BIND").rpartition(":")
    nc, js = await connect_jetstream(settings, "orders")
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=10, open=False, kwargs={"autocommit": True})
    await pool.open(wait=True, timeout=10)
    cache = redis.asyncio.Redis.from_url(
        redis_url, socket_timeout=1, socket_connect_timeout=1, decode_responses=True
    )
    relay = Relay(pool, js)
    relaying = asyncio.create_task(relay.run())
    server = uvicorn.Server(
        uvicorn.Config(make_app(nc, pool, cache, relay), host=host, port=int(port), log_level="warning")
    )
    print(f"orders: listening on http://{host}:{port}", flush=True)
    try:
        await server.serve()  # until SIGTERM / SIGINT
    finally:
        relaying.cancel()
        await cache.aclose()
        await pool.close()
        await nc.drain()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
