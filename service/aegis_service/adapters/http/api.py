"""The FastAPI application: the one error shape, ``/healthz`` and the registry routes; the composition
root adds the probe and audit routers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from aegis_service import __version__
from aegis_service.adapters.http.errors import E500, install_error_handlers
from aegis_service.adapters.http.registry import add_registry_routes
from aegis_service.definitions import DefinitionService
from aegis_service.domain.models import HealthReport


def create_app(definitions: DefinitionService, health: Callable[[], dict[str, Any]]) -> FastAPI:
    app = FastAPI(
        title="aegis-service registry API",
        version=__version__,
        description="Service-definition registry of the pytest-aegis reference service, stored in NATS KV.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)

    @app.get("/healthz", response_model=HealthReport, responses={**E500}, tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the same document the NATS health responder sends (always 200; see ``status``)."""
        return health()

    add_registry_routes(app, definitions)
    return app
