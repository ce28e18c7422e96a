"""HTTP side of the audit pipeline: probes, access grants and the audit-events query API."""

from __future__ import annotations

import datetime as dt

import httpx
import psycopg
import pytest
from audit_support import count_rows

from aegis_service.migrations import downgrade, head, upgrade

pytestmark = pytest.mark.asyncio
T0 = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def field_of(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["error"]["details"][0]["field"]


async def test_without_a_database_the_pipeline_is_off_and_readiness_says_so(fast_app):
    app = fast_app()
    async with httpx.AsyncClient(base_url=app.http_url) as http:
        assert (await http.get("/ping")).json() == {"status": "ok"}
        health = (await http.get("/health")).json()
        assert health["status"] == "healthy"
        assert health["nats"]["connected"] is True
        assert health["database"] == {
            "status": "not_configured",
            "migrationVersion": None,
            "headVersion": head(),
        }
        ready = await http.get("/readiness")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True and ready.json()["database"]["status"] == "not_configured"
        assert (await http.get("/api/audit-events")).status_code == 404
        assert (await http.get("/healthz")).json()["status"] == "healthy"  # the old probe is untouched


async def test_readiness_follows_the_migration_version(audit_stack):
    stack = audit_stack()
    async with stack.http() as http:
        health = (await http.get("/health")).json()
        assert health["database"] == {"status": "up", "migrationVersion": head(), "headVersion": head()}
        assert (await http.get("/readiness")).status_code == 200

        downgrade(stack.dsn)
        ready = await http.get("/readiness")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == [
            "database: missing tables: access_grants",
            f"database: migrations at version {head() - 1}, head is {head()}",
        ]
        assert ready.json()["database"]["missingTables"] == ["access_grants"]

        upgrade(stack.dsn)
        assert (await http.get("/readiness")).status_code == 200


async def test_grant_validation_conflict_and_not_found(audit_stack):
    stack = audit_stack()
    grant = {"principal": "svc-billing", "subjectPattern": "billing.>", "permission": "subscribe"}
    async with stack.http() as http:
        assert (await http.post("/api/access-grants", json=grant)).status_code == 201
        duplicate = await http.post("/api/access-grants", json=grant)
        assert duplicate.status_code == 409
        assert duplicate.json()["error"]["code"] == "conflict"
        assert field_of(await http.post("/api/access-grants", json={**grant, "permission": "admin"})) == (
            "permission"
        )
        bad_pattern = {**grant, "subjectPattern": "a..b"}
        assert field_of(await http.post("/api/access-grants", json=bad_pattern)) == "subjectPattern"
        assert field_of(await http.post("/api/access-grants", json={**grant, "extra": 1})) == "extra"
        missing = await http.delete("/api/access-grants/4b0c34a4-92b3-4c0a-8d4c-3f8f1b0b8a11")
        assert missing.status_code == 404
        assert field_of(await http.delete("/api/access-grants/not-a-uuid")) == "grantId"
    # Only the successful change wrote an event: the refused ones rolled back with their outbox rows.
    assert count_rows(stack.dsn, "outbox_events") == 1
    assert count_rows(stack.dsn, "access_grants") == 1


def insert_events(dsn: str, rows: list[tuple[str, str, dt.datetime]]) -> None:
    with psycopg.connect(dsn) as conn:
        for event_id, event_type, occurred in rows:
            conn.execute(
                "INSERT INTO audit_events (event_id, event_type, subject, occurred_at, body) "
                "VALUES (%s, %s, %s, %s, %s)",
                (event_id, event_type, f"audit.{event_type}", occurred, f'{{"id": "{event_id}"}}'),
            )


async def test_audit_events_filters_and_pagination(audit_stack):
    stack = audit_stack()
    insert_events(
        stack.dsn,
        [
            (f"e{n}", "grant.created" if n % 2 else "grant.revoked", T0 + dt.timedelta(minutes=n))
            for n in range(10)
        ],
    )
    async with stack.http() as http:

        async def ids(**params) -> list[str]:
            response = await http.get("/api/audit-events", params=params)
            assert response.status_code == 200, response.text
            return [item["id"] for item in response.json()["items"]]

        assert await ids() == [f"e{n}" for n in range(10)]
        assert await ids(type="grant.created") == ["e1", "e3", "e5", "e7", "e9"]
        window = {"since": (T0 + dt.timedelta(minutes=2)).isoformat(), "until": "2026-11-22T03:05:00Z"}
        assert await ids(**window) == ["e2", "e3", "e4"]
        assert await ids(type="grant.revoked", **window) == ["e2", "e4"]
        assert await ids(type="nothing.like.this") == []

        pages, cursor = [], None
        while True:
            params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/audit-events", params=params)).json()
            pages.append([item["id"] for item in page["items"]])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert pages == [["e0", "e1", "e2", "e3"], ["e4", "e5", "e6", "e7"], ["e8", "e9"]]

        first = (await http.get("/api/audit-events", params={"limit": 1})).json()["items"][0]
        assert first["type"] == "grant.revoked" and first["subject"] == "audit.grant.revoked"
        assert first["occurredAt"].startswith("2026-11-22T03:00:00") and first["event"] == {"id": "e0"}


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "0.5"}, "until"),
        ({"since": "1700000000"}, "since"),
        ({"since": "2026-11-22T03:00:00"}, "since"),
        ({"since": "2026-11-22T04:00:00Z", "until": "2026-11-22T03:00:00Z"}, "until"),
        ({"cursor": "abc"}, "cursor"),
        ({"type": ""}, "type"),
    ],
)
async def test_audit_events_validation_names_the_bad_field(audit_stack, params, field):
    stack = audit_stack()
    async with stack.http() as http:
        response = await http.get("/api/audit-events", params=params)
    assert field_of(response) == field
    assert response.json()["error"]["code"] == "validation_error"
