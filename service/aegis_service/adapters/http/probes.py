"""Operational probes: ``/ping`` (the process answers), ``/health`` (NATS, database and migration
version, always 200: read ``status``) and ``/readiness`` (200 only when the service can do its job; the
verdicts come from :class:`~aegis_service.health.Probes`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aegis_service.adapters.http.errors import E500
from aegis_service.health import Probes

_READY_DOC = {
    "description": "Ready, or not (503): `reasons` says why.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def create_probes_router(probes: Probes) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.get("/ping", responses={**E500})
    async def ping() -> dict[str, str]:
        """Liveness: the process answers HTTP."""
        return {"status": "ok"}

    @router.get("/health", responses={**E500})
    async def health() -> dict[str, Any]:
        """NATS, database and migration status (always 200: read ``status``)."""
        return await probes.health()

    @router.get("/readiness", responses={200: _READY_DOC, 503: _READY_DOC, **E500})
    async def readiness() -> JSONResponse:
        """200 when NATS is connected and the database (if configured) is migrated to head; else 503."""
        body = await probes.readiness()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    return router
