"""The one error shape of the HTTP API and everything that produces it.

Every error is JSON ``{"error": {"code", "message", "details": [{"field", "message"}]}}`` and is declared
in the OpenAPI document (the ``E404``... response docs); no traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis_service.domain.errors import Conflict, NotFound, ServiceError, Unavailable
from aegis_service.domain.models import CamelModel

logger = logging.getLogger(__name__)

_STATUS_FOR: dict[type[ServiceError], int] = {NotFound: 404, Conflict: 409, Unavailable: 503}

# -- the error shape ------------------------------------------------------------------------------------

ErrorCode = Literal[
    "validation_error",
    "not_found",
    "conflict",
    "precondition_required",
    "method_not_allowed",
    "unavailable",
    "internal_error",
    "http_error",
]


class ErrorDetail(CamelModel):
    field: str
    message: str


class ErrorBody(CamelModel):
    code: ErrorCode
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(CamelModel):
    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    details: Iterable[ErrorDetail] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=list(details)))  # type: ignore[arg-type]
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


# -- OpenAPI declarations ---------------------------------------------------------------------------------

Responses = dict[int | str, dict[str, Any]]


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


E404: Responses = {404: _doc("No service definition with this name.")}
E409: Responses = {409: _doc("Conflict: the name exists already, or the If-Match revision is stale.")}
E422: Responses = {422: _doc("Validation error (including malformed JSON and a malformed If-Match header).")}
E422_PAGE: Responses = {
    422: _doc("Validation error: `limit` out of range, or a `cursor` that is not a `nextCursor` of this API.")
}
E428: Responses = {428: _doc("If-Match header missing.")}
E500: Responses = {500: _doc("Unexpected internal error (no details are disclosed).")}
E503: Responses = {
    503: _doc("NATS / JetStream KV unavailable (not connected, timeout or circuit breaker open).")
}

# -- errors the routes raise ----------------------------------------------------------------------------


class InvalidField(Exception):
    """A request value FastAPI's own validation cannot check (422 naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class PreconditionRequired(Exception):
    pass


# -- turning errors into the shape ------------------------------------------------------------------------


def _field_name(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "path", "query", "header", "cookie"):
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or "body"


def validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    details: list[ErrorDetail] = []
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            position = error["loc"][1] if len(error.get("loc", ())) > 1 else "?"
            details.append(
                ErrorDetail(field="body", message=f"malformed JSON: {reason} at position {position}")
            )
            continue
        details.append(
            ErrorDetail(field=_field_name(error.get("loc", ())), message=str(error.get("msg", "invalid")))
        )
    return details


def validation_error(details: list[ErrorDetail]) -> JSONResponse:
    first = details[0] if details else ErrorDetail(field="body", message="invalid request")
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return error_response(
        422, "validation_error", f"invalid request: {first.field}: {first.message}{more}", details
    )


class CatchAllMiddleware:
    """Turns any unhandled exception into a bare 500 error body (logged with its traceback on stderr)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                response = error_response(500, "internal_error", "internal server error")
                await response(scope, receive, send)


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """All methods routed for this path (Starlette's 405 names only the first matching route's)."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] is not Match.NONE:
            methods.update(route.methods or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(CatchAllMiddleware)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(validation_details(exc.errors()))

    @app.exception_handler(InvalidField)
    async def on_invalid_field(_request: Request, exc: InvalidField) -> JSONResponse:
        return validation_error([ErrorDetail(field=exc.field, message=exc.message)])

    @app.exception_handler(PreconditionRequired)
    async def on_precondition(_request: Request, _exc: PreconditionRequired) -> JSONResponse:
        return error_response(
            428,
            "precondition_required",
            "If-Match header required: send the ETag from GET",
            [ErrorDetail(field="If-Match", message="header is required")],
        )

    @app.exception_handler(ServiceError)
    async def on_service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        status = next((code for kind, code in _STATUS_FOR.items() if isinstance(exc, kind)), 500)
        if status == 500:
            logger.error("internal error: %s", exc.message)
            return error_response(500, "internal_error", "internal server error")
        headers = None
        if isinstance(exc, Unavailable):
            logger.info("503: %s", exc.message)
            headers = {"Retry-After": str(math.ceil(exc.retry_after or 1))}
        return error_response(status, exc.code, exc.message, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 400:  # body could not be decoded at all (e.g. not UTF-8)
            return validation_error([ErrorDetail(field="body", message="malformed request body")])
        if exc.status_code == 404:
            return error_response(404, "not_found", "no such resource", headers=headers)
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request.scope)) or headers.get("Allow", "")
            return error_response(405, "method_not_allowed", "method not allowed", headers=headers)
        return error_response(exc.status_code, "http_error", str(exc.detail), headers=headers)
