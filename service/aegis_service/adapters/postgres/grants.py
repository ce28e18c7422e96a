"""Access grants in PostgreSQL (the :class:`~aegis_service.audit.GrantStore`). Every change writes its
row and its audit event (into the outbox) in one transaction: either both are committed or neither is."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from aegis_service.adapters.postgres.db import AsyncConn, Database
from aegis_service.adapters.postgres.outbox import enqueue
from aegis_service.domain.audit import AccessGrantInput, AccessGrantOut
from aegis_service.domain.errors import Conflict, NotFound
from aegis_service.domain.events import new_event

CREATED = "access_grant.created"
REVOKED = "access_grant.revoked"

_INSERT = """
INSERT INTO access_grants (id, principal, subject_pattern, permission) VALUES (%s, %s, %s, %s)
RETURNING id, principal, subject_pattern, permission, created_at
"""
_DELETE = """
DELETE FROM access_grants WHERE id = %s RETURNING id, principal, subject_pattern, permission, created_at
"""
_COLUMNS = ("id", "principal", "subjectPattern", "permission", "createdAt")


class GrantRepository:
    def __init__(self, database: Database, source: str) -> None:
        self._db = database
        self._source = source

    async def create(self, grant: AccessGrantInput) -> AccessGrantOut:
        try:
            async with self._db.transaction() as conn:
                cursor = await conn.execute(
                    _INSERT, (uuid.uuid4(), grant.principal, grant.subject_pattern, grant.permission)
                )
                return await self._emit(conn, CREATED, await cursor.fetchone())
        except psycopg.errors.UniqueViolation:
            raise Conflict(
                f"{grant.principal!r} already has {grant.permission} on {grant.subject_pattern!r}"
            ) from None

    async def revoke(self, grant_id: uuid.UUID) -> AccessGrantOut:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(_DELETE, (grant_id,))
            row = await cursor.fetchone()
            if row is None:
                raise NotFound(f"no access grant {grant_id}")
            return await self._emit(conn, REVOKED, row)

    async def _emit(self, conn: AsyncConn, event_type: str, row: Any) -> AccessGrantOut:
        data = dict(zip(_COLUMNS, row, strict=True))
        event = new_event(
            event_type,
            {**data, "id": str(data["id"]), "createdAt": data["createdAt"].isoformat()},
            self._source,
        )
        await enqueue(conn, [event])
        return AccessGrantOut.model_validate({**data, "eventId": event.event_id})
