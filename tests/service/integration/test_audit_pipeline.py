"""The audit pipeline end to end against real NATS (JetStream) and PostgreSQL: outbox -> relay ->
stream AUDIT -> consumer -> audit_events, under duplicates, crashes and outages."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from audit_support import consumer_info, count_rows, event, new_database, publish, wait_all_acked

from aegis_service.adapters.postgres.outbox import enqueue
from aegis_service.domain.events import new_event
from pytest_aegis import assert_event_persisted, assert_no_event_lost
from pytest_aegis.waiting import async_wait_until

pytestmark = pytest.mark.asyncio


async def test_grant_created_and_revoked_events_are_persisted(audit_stack):
    stack = audit_stack()
    async with stack.http() as http:
        created = await http.post(
            "/api/access-grants",
            json={"principal": "alice", "subjectPattern": "orders.*", "permission": "publish"},
        )
        assert created.status_code == 201, created.text
        grant = created.json()
        assert created.headers["X-Audit-Event-Id"] == grant["eventId"]
        await assert_event_persisted(stack.dsn, grant["eventId"], within=5.0)

        revoked = await http.delete(f"/api/access-grants/{grant['id']}")
        assert revoked.status_code == 204
        await assert_event_persisted(stack.dsn, revoked.headers["X-Audit-Event-Id"])

        page = (await http.get("/api/audit-events", params={"type": "access_grant.created"})).json()
    [stored] = page["items"]
    assert stored["id"] == grant["eventId"]
    assert stored["subject"] == "audit.access_grant.created"
    assert stored["event"]["data"]["principal"] == "alice"
    assert stored["event"]["data"]["subjectPattern"] == "orders.*"


async def test_the_same_event_published_twice_is_stored_once(audit_stack):
    stack = audit_stack()
    nc = await stack.nats.connect()
    try:
        js = nc.jetstream()
        event_id, body = event()
        first = await js.publish("audit.test.happened", body, headers={"Nats-Msg-Id": event_id})
        again = await js.publish("audit.test.happened", body, headers={"Nats-Msg-Id": event_id})
        assert (first.duplicate, again.duplicate) == (None, True)  # the stream's duplicate window
        # Past the window (another Nats-Msg-Id): the stream keeps it, the consumer's insert absorbs it.
        past_window = await js.publish("audit.test.happened", body, headers={"Nats-Msg-Id": event_id + "-r"})
        assert past_window.seq == first.seq + 1
        sentinel = await publish(js, [event()])
        await assert_no_event_lost(stack.dsn, [event_id, *sentinel], within=5.0, strict=True)
        await wait_all_acked(js, past_window.seq + 1)  # all three messages handled and acked
    finally:
        await nc.close()
    assert count_rows(stack.dsn) == 2


async def test_consumer_killed_mid_batch_loses_and_duplicates_nothing(audit_stack):
    stack = audit_stack(AEGIS_AUDIT_BATCH_SIZE="100")
    total = 4000
    events = [event() for _ in range(total)]
    nc = await stack.nats.connect()
    try:
        js = nc.jetstream()
        await publish(js, events[:300])
        await assert_no_event_lost(
            stack.dsn, [event_id for event_id, _ in events[:300]], within=10, strict=True
        )
        # Hold the consumer mid-batch instead of racing it: with audit_events locked against writes
        # it fetches the next batch and cannot store it, so the kill finds it holding messages.
        async with await psycopg.AsyncConnection.connect(stack.dsn) as holder:
            await holder.execute("LOCK TABLE audit_events IN EXCLUSIVE MODE")  # reads still work
            await _publish_in_chunks(js, events[300:], chunk=200)
            await async_wait_until(
                lambda: consumer_info(js),
                "the consumer to hold a fetched, unstored batch",
                timeout=10,
                ok=lambda info: info.num_ack_pending > 0,
            )
            stack.app.kill()  # kill -9: fetched batches are neither stored nor acked
            assert count_rows(stack.dsn) == 300, "nothing more could be stored while the table was locked"
            await holder.rollback()
        stack.app.restart()
        await assert_no_event_lost(stack.dsn, [event_id for event_id, _ in events], within=30, strict=True)
    finally:
        await nc.close()


async def _publish_in_chunks(js, events, chunk: int) -> None:
    for start in range(0, len(events), chunk):
        await publish(js, events[start : start + chunk])


async def _enqueue(dsn: str, events: list, batch: int = 500) -> None:
    """The producer side: committed outbox batches of ``batch`` events."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for start in range(0, len(events), batch):
            async with conn.transaction():
                await enqueue(conn, events[start : start + batch])


_CLAIM_HELD = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE SKIP LOCKED%'"
)


def _relay_holds_a_claim(dsn: str) -> bool:
    """The relay's claim transaction is open: it locked a batch of the outbox and publishes it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(_CLAIM_HELD).fetchone()
    return bool(row and row[0])


async def test_nats_killed_and_restarted_during_a_burst_stores_every_event_once(
    audit_stack, postgres_server_factory
):
    pg = postgres_server_factory()  # a server of its own: the test pauses it
    stack = audit_stack(dsn=new_database(pg, "audit_nats_kill"))
    burst = [new_event("load.burst", {"n": n}, "test") for n in range(5000)]
    nc = await stack.nats.connect()
    try:
        await _enqueue(stack.dsn, burst[:500])
        await assert_no_event_lost(stack.dsn, [e.event_id for e in burst[:500]], within=10, strict=True)
        await wait_all_acked(nc.jetstream(), 500)  # the ack floor is at 500: nothing of before is pending
    finally:
        await nc.close()
    # Hold the burst mid-flight with pauses instead of racing the pipeline.  NATS paused: the relay
    # claims a batch of the burst and cannot get it acknowledged.  Then PostgreSQL paused and NATS
    # resumed: the batch reaches the stream, the relay cannot mark it published, the consumer
    # fetches it and cannot store it.  NATS dies with all of that in flight.
    try:
        stack.nats.pause()
        await _enqueue(stack.dsn, burst[500:])
        await async_wait_until(
            lambda: asyncio.to_thread(_relay_holds_a_claim, stack.dsn),
            "the relay to hold a claimed batch it cannot publish",
            timeout=10,
        )
        pg.pause()
        stack.nats.resume()
        nc = await stack.nats.connect()
        try:
            info = await async_wait_until(
                lambda: consumer_info(nc.jetstream()),
                "the consumer to hold fetched, unstored events of the burst",
                timeout=10,
                ok=lambda i: i.delivered.stream_seq > 500 and i.num_ack_pending > 0,
            )
        finally:
            await nc.close()
        assert info.ack_floor.stream_seq == 500, f"nothing of the burst can be stored yet: {info}"
        stack.nats.kill()
        stack.nats.restart()  # same port, same JetStream store
        pg.resume()  # the relay marks its batch, the consumer's inserts go ahead: their acks are lost
    finally:
        for server in (stack.nats, pg):
            if server.is_paused:
                server.resume()
    await assert_no_event_lost(stack.dsn, [e.event_id for e in burst], within=60, strict=True)
    assert count_rows(stack.dsn, "outbox_events WHERE published_at IS NULL") == 0


async def test_postgres_stopped_consumer_stops_acking_and_resumes(audit_stack, postgres_server_factory):
    server = postgres_server_factory()
    stack = audit_stack(dsn=new_database(server, "audit_outage"))
    nc = await stack.nats.connect()
    try:
        js = nc.jetstream()
        before = await publish(js, [event() for _ in range(200)])
        await assert_no_event_lost(stack.dsn, before, within=10)
        acked = (await wait_all_acked(js, 200)).ack_floor.stream_seq

        server.stop()
        async with stack.http() as http:
            ready = await http.get("/readiness")
            assert ready.status_code == 503
            assert ready.json()["ready"] is False
            assert ready.json()["reasons"][0].startswith("database: database unreachable")
            assert ready.json()["database"]["status"] == "down"

            during = await publish(js, [event() for _ in range(300)])
            # Nothing is acked while the database is away: the ack floor stays, the events wait.
            info = await async_wait_until(
                lambda: consumer_info(js),
                "the consumer to have fetched the new events",
                timeout=10,
                ok=lambda i: i.delivered.stream_seq == 500 or i.num_redelivered > 0,
            )
            assert info.ack_floor.stream_seq == acked, info
            assert info.num_pending + info.num_ack_pending >= 300, info

            server.restart()
            await assert_no_event_lost(stack.dsn, before + during, within=30)
            await async_wait_until(
                lambda: http.get("/readiness"),
                "readiness after the database returns",
                timeout=10,
                ok=lambda r: r.status_code == 200,
            )
        await wait_all_acked(js, 500)
    finally:
        await nc.close()


OVERSIZED = json.dumps({"id": "big", "type": "t.t", "data": "x" * 2000}).encode()
MALFORMED = {
    "bad JSON": (b'{"id": "x", "type": ', "bad_json: "),
    "missing id": (json.dumps({"type": "t.t", "data": {}}).encode(), "missing_id: "),
    "oversized payload": (OVERSIZED, f"oversized: {len(OVERSIZED)} bytes > limit of 1024 bytes"),
    "not an object": (b"[1, 2]", "not_object: "),
    "naive occurredAt": (
        json.dumps({"id": "naive", "type": "t.t", "occurredAt": "2026-11-22T03:00:00"}).encode(),
        "bad_occurred_at: ",
    ),
    "rejected by PostgreSQL": (
        b'{"id": "surrogate", "type": "t.t", "data": "\\ud800"}',
        "rejected_by_database: ",
    ),
}


@pytest.mark.parametrize("raw, reason", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_event_is_dead_lettered_and_the_consumer_keeps_going(audit_stack, raw, reason):
    stack = audit_stack(AEGIS_AUDIT_MAX_EVENT_BYTES="1024")
    nc = await stack.nats.connect()
    try:
        js = nc.jetstream()
        good_before = await publish(js, [event()])
        await js.publish("audit.test.broken", raw)
        good_after = await publish(js, [event(), event()])
        await assert_no_event_lost(stack.dsn, good_before + good_after, within=10)
        await wait_all_acked(js, 4)
    finally:
        await nc.close()
    with psycopg.connect(stack.dsn) as conn:
        rows = conn.execute("SELECT subject, raw, reason FROM audit_dead_letters").fetchall()
    assert len(rows) == 1, rows
    subject, stored_raw, stored_reason = rows[0]
    assert (subject, bytes(stored_raw)) == ("audit.test.broken", raw)
    assert stored_reason.startswith(reason), stored_reason
    assert count_rows(stack.dsn) == 3


async def test_two_instances_share_the_outbox_and_the_consumer_without_loss(audit_stack, fast_app):
    stack = audit_stack(AEGIS_AUDIT_BATCH_SIZE="50")
    second = fast_app(nats=stack.nats, env={**stack.app.env, "AEGIS_INSTANCE_ID": "second-instance"})
    burst = [new_event("load.shared", {"n": n}, "test") for n in range(3000)]
    async with await psycopg.AsyncConnection.connect(stack.dsn) as conn:
        for start in range(0, len(burst), 100):
            async with conn.transaction():
                await enqueue(conn, burst[start : start + 100])
    nc = await stack.nats.connect()
    try:
        direct = await publish(nc.jetstream(), [event() for _ in range(2000)])
    finally:
        await nc.close()
    await assert_no_event_lost(stack.dsn, [e.event_id for e in burst] + direct, within=30)
    assert count_rows(stack.dsn, "outbox_events WHERE published_at IS NULL") == 0
    assert second.instance_id == "second-instance"


async def test_service_starts_while_postgres_is_down_and_catches_up(audit_stack, postgres_server_factory):
    server = postgres_server_factory()
    dsn = new_database(server, "audit_late")
    server.stop()
    stack = audit_stack(dsn=dsn)  # NATS up, database down: the service still starts
    async with stack.http() as http:
        ready = await http.get("/readiness")
        assert ready.status_code == 503
        assert ready.json()["database"]["status"] == "down"
        refused = await http.post(
            "/api/access-grants", json={"principal": "bob", "subjectPattern": "a.b", "permission": "publish"}
        )
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "unavailable"

        server.restart()
        await async_wait_until(
            lambda: http.get("/readiness"),
            "readiness once PostgreSQL is up",
            timeout=15,
            ok=lambda r: r.status_code == 200,
        )
        created = await http.post(
            "/api/access-grants", json={"principal": "bob", "subjectPattern": "a.b", "permission": "publish"}
        )
        assert created.status_code == 201, created.text
    await assert_event_persisted(stack.dsn, created.json()["eventId"], within=10)
