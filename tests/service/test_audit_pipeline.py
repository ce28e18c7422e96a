"""The audit pipeline end to end against real NATS (JetStream) and PostgreSQL: outbox -> relay ->
stream AUDIT -> consumer -> audit_events, under duplicates, crashes and outages."""

from __future__ import annotations

import pytest
from audit_support import count_rows, event, publish

from pytest_aegis import assert_event_persisted, assert_no_event_lost

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
