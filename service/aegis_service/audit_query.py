"""Reading stored audit events: filters on type and time, keyset pagination on the storage order.

The cursor is the ``seq`` of the last event of a page (opaque to clients): the next page is the
events after it, so pages are stable while new events arrive."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg import sql

from aegis_service.audit_models import AuditEventOut, AuditEventPage
from aegis_service.db import Database


@dataclass(frozen=True)
class AuditFilter:
    event_type: str | None = None
    since: dt.datetime | None = None  # inclusive, on occurredAt
    until: dt.datetime | None = None  # exclusive
    after_seq: int = 0
    limit: int = 100


def build_query(f: AuditFilter) -> tuple[sql.Composed, list[object]]:
    clauses = [sql.SQL("seq > %s")]
    params: list[object] = [f.after_seq]
    if f.event_type is not None:
        clauses.append(sql.SQL("event_type = %s"))
        params.append(f.event_type)
    if f.since is not None:
        clauses.append(sql.SQL("occurred_at >= %s"))
        params.append(f.since)
    if f.until is not None:
        clauses.append(sql.SQL("occurred_at < %s"))
        params.append(f.until)
    params.append(f.limit + 1)  # one more tells whether there is a next page
    query = sql.SQL(
        "SELECT seq, event_id, event_type, subject, occurred_at, stored_at, body FROM audit_events "
        "WHERE {} ORDER BY seq LIMIT %s"
    ).format(sql.SQL(" AND ").join(clauses))
    return query, params


async def list_events(database: Database, f: AuditFilter) -> AuditEventPage:
    query, params = build_query(f)
    async with database.transaction() as conn:
        cursor = await conn.execute(query, params)
        rows = await cursor.fetchall()
    page = rows[: f.limit]
    items = [
        AuditEventOut(
            id=row[1],
            type=row[2],
            subject=row[3],
            occurred_at=row[4],
            stored_at=row[5],
            event=row[6],
        )
        for row in page
    ]
    next_cursor = str(page[-1][0]) if len(rows) > f.limit else None
    return AuditEventPage(items=items, next_cursor=next_cursor)
