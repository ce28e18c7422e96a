"""Suite ``audit``: end-to-end throughput of the reference service's audit pipeline.

Set-up (not timed): one ``NatsSpec()`` nats-server (TLS + user/password + JetStream), one PostgreSQL
server with a database migrated to head, and the reference service on both
(``AEGIS_DATABASE_URL`` set, logs at WARNING).  A warm-up of :data:`WARMUP` events runs first.

Two measurements, each over ``--events`` events (50,000 by default; ``--quick``: 500):

``stream`` (the target)
    The bench publishes every event to stream ``AUDIT`` (``Nats-Msg-Id`` = event id, each acked by
    the stream, up to 4,000 acks pending; see :func:`_publish_all`); the clock runs from the first
    publish until the last row is in ``audit_events`` (``SELECT count(*)``, polled as
    :func:`_wait_stored` says: the figure is conservative by up to 5 ms).

``outbox``
    The producer side instead: the events are committed to ``outbox_events`` (in batches of 5,000),
    the service's relay publishes them and its consumer stores them; the clock runs from the first
    outbox commit until the last row is stored.

Each run then counts, per expected id, the rows stored: ``lost`` (ids with no row) and
``duplicates`` (extra rows) must both be 0.  CPU seconds of the service process are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.health_rtt import service_stack
from bench.procs import process_cpu_s
from pytest_aegis.app.process import AppProcess
from pytest_aegis.assertions.audit import count_events
from pytest_aegis.backends.local.backend import LocalBackend
from pytest_aegis.natsd.server import NatsServer

NAME = "audit"
TARGETS: dict[str, float] = {"events_per_s": 10_000, "lost": 0, "duplicates": 0}
EVENTS = 50_000
QUICK_EVENTS = 500
WARMUP = 1_000
POLL_MIN_S = 0.005
POLL_MAX_S = 0.25
OUTBOX_CHUNK = 5_000
SUBJECT = "audit.bench.happened"
DATABASE = "audit_bench"

Event = tuple[str, bytes]


def _progress(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def make_events(count: int, tag: str) -> list[Event]:
    events = []
    for n in range(count):
        event_id = str(uuid.uuid4())
        doc = {
            "id": event_id,
            "type": f"bench.{tag}",
            "occurredAt": "2026-11-22T03:00:00Z",
            "source": "bench",
            "data": {"n": n, "principal": f"user-{n % 97}", "subjectPattern": "orders.*"},
        }
        events.append((event_id, json.dumps(doc, separators=(",", ":")).encode()))
    return events


@dataclass
class Stack:
    server: NatsServer
    dsn: str
    app: AppProcess


@contextlib.contextmanager
def audit_stack() -> Iterator[Stack]:
    """NATS (secured, JetStream), PostgreSQL with a migrated database, and the service on both."""
    from aegis_service.migrations import upgrade

    dsns: list[str] = []

    def database(backend: LocalBackend) -> dict[str, str]:
        postgres = backend.start_postgres(name="bench-audit")
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        dsns.append(postgres.dsn_for(DATABASE))
        upgrade(dsns[0])
        return {"AEGIS_DATABASE_URL": dsns[0], "AEGIS_LOG_LEVEL": "WARNING"}

    with service_stack("bench-audit", prepare=database) as stack:
        yield Stack(stack.server, dsns[0], stack.app)


async def _wait_stored(conn: psycopg.AsyncConnection[Any], target: int, timeout: float) -> float:
    """Poll ``count(*)`` until it reaches ``target``; return the time it was seen (perf_counter).

    ``count(*)`` scans the whole table, so polling it every 10 ms took ~30% of a core by the end of
    a run (measured with top), CPU the pipeline under test then lacked.  The poll instead sleeps half
    the time the rate so far predicts for the rest, between :data:`POLL_MIN_S` and
    :data:`POLL_MAX_S`: a few dozen polls per run, the last ones :data:`POLL_MIN_S` apart, so the
    figure stays conservative by at most that much.
    """
    started = time.perf_counter()
    deadline = started + timeout
    first: int | None = None
    while True:
        cursor = await conn.execute("SELECT count(*) FROM audit_events")
        row = await cursor.fetchone()
        now = time.perf_counter()
        stored = int(row[0]) if row is not None else 0
        if stored >= target:
            return now
        if now > deadline:
            raise TimeoutError(f"only {stored} of {target} events stored after {timeout:.0f}s")
        first = stored if first is None else first
        rate = (stored - first) / (now - started) if stored > first else 0.0
        predicted = (target - stored) / rate if rate else POLL_MAX_S
        await asyncio.sleep(min(max(predicted / 2, POLL_MIN_S), POLL_MAX_S))


async def _publish_all(server: NatsServer, events: list[Event]) -> float:
    """Publish every event, each acked by the stream (the service's own :class:`BatchPublisher`, at
    most 4,000 acks pending); return the seconds until the last ack came back.

    Not nats-py's ``publish_async``: the bench's producer shares the 2 cores with the pipeline it
    measures, and ``publish_async`` cost ~75 us of CPU per event here against ~25 us (same server,
    same acks), so with it the figure was the producer's speed, not the pipeline's.
    """
    from aegis_service.adapters.nats.publish import BatchPublisher

    nc = await server.connect()
    try:
        publisher = BatchPublisher(nc)
        await publisher.start()
        # Nats-Expected-Stream: the server rejects (and the publisher fails on) any event that
        # another stream would store.
        messages = [
            (SUBJECT, body, {"Nats-Msg-Id": event_id, "Nats-Expected-Stream": "AUDIT"})
            for event_id, body in events
        ]
        started = time.perf_counter()
        await publisher.publish(messages, timeout=60)
        return time.perf_counter() - started
    finally:
        await nc.close()


async def _enqueue_all(dsn: str, events: list[Event]) -> float:
    from aegis_service.adapters.postgres.outbox import enqueue
    from aegis_service.domain.events import OutgoingEvent

    outgoing = [OutgoingEvent(event_id, SUBJECT, body) for event_id, body in events]
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for start in range(0, len(outgoing), OUTBOX_CHUNK):
            async with conn.transaction():
                await enqueue(conn, outgoing[start : start + OUTBOX_CHUNK])
    return time.perf_counter() - started


async def _measure(
    stack: Stack, events: list[Event], produce: Callable[[list[Event]], Coroutine[Any, Any, float]]
) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(stack.dsn, autocommit=True) as conn:
        cursor = await conn.execute("SELECT count(*) FROM audit_events")
        row = await cursor.fetchone()
        before = int(row[0]) if row else 0
        cpu_before = process_cpu_s(stack.app.pid)
        started = time.perf_counter()
        producing = asyncio.create_task(produce(events))
        stored_at = await _wait_stored(conn, before + len(events), timeout=60 + len(events) / 1000)
        produce_s = await producing
        cpu_after = process_cpu_s(stack.app.pid)
        found = await count_events(conn, [event_id for event_id, _ in events])
    elapsed = stored_at - started
    lost = sum(1 for event_id, _ in events if found.counts.get(event_id, 0) == 0)
    duplicates = sum(n - 1 for n in found.counts.values() if n > 1)
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 3)
    return {
        "events": len(events),
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(len(events) / elapsed, 1),
        "produce_s": round(produce_s, 3),
        "lost": lost,
        "duplicates": duplicates,
        "service_cpu_s": cpu,
    }


def run(reps: int, quick: bool, events: int | None = None) -> dict[str, Any]:
    """Run the audit suite over ``events`` events (``reps`` is not used: one long run is the figure)."""
    count = events or (QUICK_EVENTS if quick else EVENTS)
    if count < 1:
        raise ValueError(f"events must be at least 1, got {count}")
    with audit_stack() as stack:
        _progress(f"stack up; warm-up with {WARMUP} events")
        asyncio.run(_measure(stack, make_events(WARMUP, "warmup"), lambda e: _publish_all(stack.server, e)))
        stream_events = make_events(count, "stream")
        stream = asyncio.run(_measure(stack, stream_events, lambda e: _publish_all(stack.server, e)))
        _progress(f"stream: {stream['events_per_s']:.0f} events/s over {count} events")
        outbox_events = make_events(count, "outbox")
        outbox = asyncio.run(_measure(stack, outbox_events, lambda e: _enqueue_all(stack.dsn, e)))
        _progress(f"outbox: {outbox['events_per_s']:.0f} events/s over {count} events")
    meets = (
        stream["events_per_s"] >= TARGETS["events_per_s"]
        and stream["lost"] == TARGETS["lost"]
        and stream["duplicates"] == TARGETS["duplicates"]
        and outbox["lost"] == 0
        and outbox["duplicates"] == 0
    )
    return {
        "targets": TARGETS,
        "events": count,
        "stream": stream,
        "outbox": outbox,
        "meets_targets": meets if not quick else None,
        "description": {
            "stream": "first publish to stream AUDIT until the last row is in audit_events",
            "outbox": "first outbox commit until the last row is in audit_events (relay + consumer)",
            "service_cpu_s": "CPU seconds of the service process during the run (/proc)",
        },
    }
