"""``GET /metrics`` (the Prometheus text format, or OpenMetrics when asked for) and the timing of the
HTTP health endpoints (``/healthz``, ``/health``, ``/readiness``), measured around the whole exchange
up to the last byte of the response."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aegis_service.adapters.http.errors import E500
from aegis_service.metrics import HEALTH_ENDPOINTS, Metrics

#: ``(Accept header) -> (body, content type)``, after the sampled values are fresh.
Scrape = Callable[[str | None], Awaitable[tuple[bytes, str]]]

_TIMED_PATHS = frozenset(endpoint for transport, endpoint in HEALTH_ENDPOINTS if transport == "http")
_TEXT: dict[str, Any] = {"schema": {"type": "string"}}
_METRICS_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The metrics, in the Prometheus text format (OpenMetrics if `Accept` asks for it).",
        "content": {"text/plain": _TEXT, "application/openmetrics-text": _TEXT},
    }
}


class HealthTimingMiddleware:
    """Times each ``GET`` of an HTTP health endpoint into ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope.get("method") != "GET" or path not in _TIMED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self._metrics.health_request("http", path, time.perf_counter() - started)


def create_metrics_router(scrape: Scrape) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", response_class=Response, responses={**_METRICS_DOC, **E500})
    async def metrics(request: Request) -> Response:
        """The service's metrics: NATS connection, health-request latency, registry operations, the
        audit consumer's pending messages and dead letters, and the process's own."""
        body, content_type = await scrape(request.headers.get("accept"))
        return Response(content=body, media_type=content_type)

    return router


def install_metrics(app: FastAPI, metrics: Metrics, scrape: Scrape) -> None:
    """Serve ``/metrics`` on ``app`` and time its health endpoints."""
    app.add_middleware(HealthTimingMiddleware, metrics=metrics)
    app.include_router(create_metrics_router(scrape))
