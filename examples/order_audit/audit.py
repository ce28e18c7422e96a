"""audit: records every order event of JetStream in PostgreSQL, exactly once.

It reads the stream ``ORDERS`` with the durable pull consumer ``audit`` and inserts each event
into ``audit_events`` (``ON CONFLICT (event_id) DO NOTHING``), acknowledging it once the row is
committed: an event redelivered (the service crashed before its ack) is stored once.  It is a
service of the NATS services protocol (ADR-32, ``nats.micro``): it answers ``$SRV.PING`` (its
health contract) and ``audit.count`` (how many events it recorded).

Configuration: ``AUDIT_NATS_URL``, ``AUDIT_NATS_USER``, ``AUDIT_NATS_PASSWORD``,
``AUDIT_NATS_CA``, ``AUDIT_DATABASE_URL``, ``AUDIT_SERVICE_NAME``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import nats.errors
import nats.micro
import psycopg
from common import STREAM, SUBJECT_PREFIX, NatsSettings, connect_jetstream, required
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.micro.request import Request

DURABLE = "audit"
BATCH = 100


async def record(conn: psycopg.AsyncConnection[tuple[object, ...]], msg: Msg) -> None:
    event_id = (msg.headers or {}).get("Nats-Msg-Id") or json.loads(msg.data)["order_id"]
    await conn.execute(
        "INSERT INTO audit_events (event_id, subject, payload, stream_seq) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (event_id) DO NOTHING",
        (event_id, msg.subject, msg.data.decode(), msg.metadata.sequence.stream),
    )


async def consume(js: nats.js.JetStreamContext, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    subscription = await js.pull_subscribe(
        f"{SUBJECT_PREFIX}.>",
        durable=DURABLE,
        stream=STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=5, max_ack_pending=1000),
    )
    while True:
        try:
            messages = await subscription.fetch(BATCH, timeout=1)
        except TimeoutError:
            continue  # nothing new
        except nats.errors.Error as exc:  # disconnected: nats-py reconnects; ask again
            print(f"audit: fetch: {exc!r}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.2)
            continue
        for msg in messages:
            await record(conn, msg)
            await msg.ack()


async def main() -> int:
    settings = NatsSettings.from_env("AUDIT")
    database_url = required("AUDIT_DATABASE_URL")
    name = os.environ.get("AUDIT_SERVICE_NAME") or "audit"
    nc, js = await connect_jetstream(settings, "audit")
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True, connect_timeout=10)
    counting = await psycopg.AsyncConnection.connect(database_url, autocommit=True, connect_timeout=10)

    async def count(request: Request) -> None:
        cursor = await counting.execute("SELECT count(*) FROM audit_events")
        row = await cursor.fetchone()
        await request.respond(json.dumps({"recorded": row[0] if row else 0}).encode())

    service = await nats.micro.add_service(nc, name=name, version="1.0.0", description="records order events")
    await service.add_endpoint(name="count", subject="audit.count", handler=count)
    consuming = asyncio.create_task(consume(js, conn))
    print(f"audit: {name} up as {service.id}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consuming.add_done_callback(lambda _: stop.set())  # a consumer that died ends the service
    await stop.wait()
    failed = consuming.done() and not consuming.cancelled() and consuming.exception()
    if failed:
        print(f"audit: the consumer failed: {failed!r}", file=sys.stderr, flush=True)
    consuming.cancel()
    await service.stop()
    await nc.drain()
    await conn.close()
    await counting.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
