"""Operational probes: ``/ping`` (the process answers), ``/health`` (NATS, database and migration
version, always 200: read ``status``) and ``/readiness`` (200 only when the service can do its job).

Readiness: NATS connected and, when ``AEGIS_DATABASE_URL`` is set, the database reachable with every
required table present and migrations at head.  Without a database the audit pipeline is off by
configuration, not broken: readiness is 200 and says ``"database": {"status": "not_configured"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aegis_service.db import Database, SchemaStatus
from aegis_service.migrations import head
from aegis_service.registry_api import E500

NatsStatus = Callable[[], dict[str, Any]]

_READY_DOC = {
    "description": "Ready, or not (503): `reasons` says why.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def _database_check(database: Database | None, status: SchemaStatus | None) -> dict[str, Any]:
    if database is None or status is None:
        return {"status": "not_configured", "migrationVersion": None, "headVersion": head()}
    check: dict[str, Any] = {
        "status": "up" if status.reachable else "down",
        "migrationVersion": status.version,
        "headVersion": status.head,
    }
    if status.missing_tables:
        check["missingTables"] = list(status.missing_tables)
    if status.error:
        check["detail"] = status.error
    return check


def create_probes_router(nats_status: NatsStatus, database: Database | None) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.get("/ping", responses={**E500})
    async def ping() -> dict[str, str]:
        """Liveness: the process answers HTTP."""
        return {"status": "ok"}

    @router.get("/health", responses={**E500})
    async def health() -> dict[str, Any]:
        """NATS, database and migration status (always 200: read ``status``)."""
        nats = nats_status()
        status = await database.status() if database is not None else None
        db = _database_check(database, status)
        healthy = nats["connected"] and db["status"] in ("up", "not_configured")
        return {"status": "healthy" if healthy else "unhealthy", "nats": nats, "database": db}

    @router.get("/readiness", responses={200: _READY_DOC, 503: _READY_DOC, **E500})
    async def readiness() -> JSONResponse:
        """200 when NATS is connected and the database (if configured) is migrated to head; else 503."""
        nats = nats_status()
        status = await database.status() if database is not None else None
        reasons = [] if nats["connected"] else ["nats: not connected"]
        if status is not None:
            reasons += [f"database: {problem}" for problem in status.problems()]
        body = {"ready": not reasons, "reasons": reasons, "database": _database_check(database, status)}
        return JSONResponse(body, status_code=200 if not reasons else 503)

    return router
