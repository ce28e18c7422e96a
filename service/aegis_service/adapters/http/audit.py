"""HTTP routes of the audit pipeline (mounted only when a database is configured): access grants, whose
changes emit audit events, and the stored audit events."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BeforeValidator

from aegis_service.adapters.http.errors import E404, E409, E422, E500, E503, InvalidField
from aegis_service.audit import EventQuery, GrantStore
from aegis_service.domain.audit import AccessGrantInput, AccessGrantOut, AuditEventPage, AuditFilter

MAX_LIMIT = 1000
EVENT_ID_HEADER = "X-Audit-Event-Id"
_EVENT_HEADER_DOC = {
    EVENT_ID_HEADER: {
        "description": "Id of the audit event the change emitted.",
        "schema": {"type": "string"},
    }
}


_DATE_TIME_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _iso_date_time(value: object) -> object:
    """Only ISO 8601 text: pydantic would also read ``0.5`` or ``1700000000`` as Unix time."""
    if value is not None and not (isinstance(value, str) and _DATE_TIME_START.match(value)):
        raise ValueError("expected an ISO 8601 date-time with a UTC offset, e.g. 2026-11-22T03:32:47Z")
    return value


DateTimeParam = Annotated[dt.datetime | None, BeforeValidator(_iso_date_time)]


def create_audit_routers(grants: GrantStore, events: EventQuery) -> list[APIRouter]:
    return [create_grants_router(grants), create_events_router(events)]


def create_grants_router(grants: GrantStore) -> APIRouter:
    router = APIRouter(tags=["access grants"])

    @router.post(
        "/api/access-grants",
        status_code=201,
        response_model=AccessGrantOut,
        responses={201: {"headers": _EVENT_HEADER_DOC}, **E409, **E422, **E500, **E503},
    )
    async def create_grant(body: AccessGrantInput, response: Response) -> AccessGrantOut:
        """Grant a permission; the grant and its ``access_grant.created`` event commit together."""
        grant = await grants.create(body)
        response.headers["Location"] = f"/api/access-grants/{grant.id}"
        response.headers[EVENT_ID_HEADER] = grant.event_id
        return grant

    @router.delete(
        "/api/access-grants/{grantId}",
        status_code=204,
        response_class=Response,
        responses={204: {"headers": _EVENT_HEADER_DOC}, **E404, **E422, **E500, **E503},
    )
    async def revoke_grant(grant_id: Annotated[uuid.UUID, Path(alias="grantId")]) -> Response:
        """Revoke a grant; the delete and its ``access_grant.revoked`` event commit together."""
        grant = await grants.revoke(grant_id)
        return Response(status_code=204, headers={EVENT_ID_HEADER: grant.event_id})

    return router


def create_events_router(events: EventQuery) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/api/audit-events", response_model=AuditEventPage, responses={**E422, **E500, **E503})
    async def audit_events(
        event_type: Annotated[str | None, Query(alias="type", min_length=1, max_length=200)] = None,
        since: Annotated[
            DateTimeParam, Query(description="occurredAt >= since (ISO 8601, with offset)")
        ] = None,
        until: Annotated[
            DateTimeParam, Query(description="occurredAt < until (ISO 8601, with offset)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        cursor: Annotated[
            str | None, Query(pattern=r"^[0-9]{1,18}$", description="nextCursor of the previous page")
        ] = None,
    ) -> AuditEventPage:
        """Stored audit events in storage order, filtered by type and time, a page at a time."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise InvalidField(name, "must include a UTC offset, e.g. 2026-11-22T03:32:47Z")
        if since is not None and until is not None and until < since:
            raise InvalidField("until", "must not be before since")
        return await events.page(AuditFilter(event_type, since, until, int(cursor) if cursor else 0, limit))

    return router
