"""FastAPI app factory for the service-definition registry API (plus ``/healthz``).

Every error is JSON ``{"error": {"code", "message", "details": [{"field", "message"}]}}`` and is declared
in the OpenAPI document; no traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis_service import __version__
from aegis_service.definitions import DefinitionRepository
from aegis_service.errors import Conflict, NotFound, ServiceError, Unavailable
from aegis_service.models import (
    SERVICE_NAME_PATTERN,
    ErrorBody,
    ErrorDetail,
    ErrorResponse,
    HealthReport,
    ServiceDefinitionInput,
    ServiceDefinitionOut,
    ServiceDefinitionUpdate,
    ServiceList,
)

logger = logging.getLogger(__name__)

IF_MATCH_PATTERN = r'^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$'
_IF_MATCH_RE = re.compile(r'^(?:W/)?"?([0-9]{1,18})"?$')

_STATUS_FOR: dict[type[ServiceError], int] = {NotFound: 404, Conflict: 409, Unavailable: 503}


class InvalidField(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class PreconditionRequired(Exception):
    pass


# -- error responses ----------------------------------------------------------------------------------


def error_response(
    status: int,
    code: str,
    message: str,
    details: Iterable[ErrorDetail] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=list(details)))  # type: ignore[arg-type]
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


Responses = dict[int | str, dict[str, Any]]


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


E404: Responses = {404: _doc("No service definition with this name.")}
E409: Responses = {409: _doc("Conflict: the name exists already, or the If-Match revision is stale.")}
E422: Responses = {422: _doc("Validation error (including malformed JSON and a malformed If-Match header).")}
E428: Responses = {428: _doc("If-Match header missing.")}
E500: Responses = {500: _doc("Unexpected internal error (no details are disclosed).")}
E503: Responses = {
    503: _doc("NATS / JetStream KV unavailable (not connected, timeout or circuit breaker open).")
}
ETAG_HEADER = {
    "ETag": {"description": 'KV revision of the entry, quoted (e.g. "7").', "schema": {"type": "string"}}
}
LOCATION_HEADER = {"Location": {"description": "URL of the new resource.", "schema": {"type": "string"}}}


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


def _install_error_handlers(app: FastAPI) -> None:
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


# -- request helpers -----------------------------------------------------------------------------------


def parse_if_match(value: str | None, *, required: bool) -> int | None:
    """Revision from ``If-Match`` (``"7"``, ``W/"7"`` or ``7``); ``None`` for ``*`` or optional+absent."""
    if value is None:
        if required:
            raise PreconditionRequired()
        return None
    text = value.strip()
    if text == "*":
        return None
    match = _IF_MATCH_RE.match(text)
    if match is None:
        raise InvalidField("If-Match", 'expected an ETag from GET, e.g. "7" (or *)')
    return int(match.group(1))


def _definition_response(
    definition: ServiceDefinitionOut, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """The definition as JSON with its ETag, serialised once by pydantic.

    Returning a ``Response`` skips FastAPI's second validation pass over a model
    the repository already built (``response_model`` still documents the schema).
    """
    assert definition.revision is not None
    return Response(
        content=definition.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={"ETag": _etag(definition.revision), **(headers or {})},
    )


def _etag(revision: int) -> str:
    return f'"{revision}"'


def _if_match_parameter(required: bool) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "If-Match",
                "in": "header",
                "required": required,
                "description": "ETag (KV revision) from a previous GET; * matches any current revision.",
                "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
            }
        ]
    }


ServiceNamePath = Annotated[str, Path(alias="serviceName", pattern=SERVICE_NAME_PATTERN)]


# -- app factory -------------------------------------------------------------------------------------------


def create_app(repository: DefinitionRepository, health: Callable[[], dict[str, Any]]) -> FastAPI:
    app = FastAPI(
        title="aegis-service registry API",
        version=__version__,
        description="Service-definition registry of the pytest-aegis reference service, stored in NATS KV.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(CatchAllMiddleware)
    _install_error_handlers(app)

    @app.get("/healthz", response_model=HealthReport, responses={**E500}, tags=["health"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the same document the NATS health responder sends (always 200; see ``status``)."""
        return health()

    @app.get("/api/services", response_model=ServiceList, responses={**E500, **E503}, tags=["services"])
    async def list_services() -> ServiceList:
        items = await repository.list()
        return ServiceList(items=items, count=len(items))

    @app.post(
        "/api/services",
        status_code=201,
        response_model=ServiceDefinitionOut,
        responses={201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}}, **E409, **E422, **E500, **E503},
        tags=["services"],
    )
    async def create_service(body: ServiceDefinitionInput) -> Response:
        created = await repository.create(body)
        return _definition_response(
            created, 201, {"Location": f"/api/services/{created.service_name}"}
        )

    @app.get(
        "/api/services/{serviceName}",
        response_model=ServiceDefinitionOut,
        responses={200: {"headers": ETAG_HEADER}, **E404, **E422, **E500, **E503},
        tags=["services"],
    )
    async def get_service(service_name: ServiceNamePath) -> Response:
        return _definition_response(await repository.get(service_name))

    @app.put(
        "/api/services/{serviceName}",
        response_model=ServiceDefinitionOut,
        responses={200: {"headers": ETAG_HEADER}, **E404, **E409, **E422, **E428, **E500, **E503},
        openapi_extra=_if_match_parameter(required=True),
        tags=["services"],
    )
    async def replace_service(
        service_name: ServiceNamePath, body: ServiceDefinitionUpdate, request: Request
    ) -> Response:
        if body.service_name is not None and body.service_name != service_name:
            raise InvalidField("serviceName", f"must match the name in the path ('{service_name}')")
        revision = parse_if_match(request.headers.get("if-match"), required=True)
        return _definition_response(await repository.update(service_name, body, revision))

    @app.delete(
        "/api/services/{serviceName}",
        status_code=204,
        response_class=Response,
        responses={**E404, **E409, **E422, **E500, **E503},
        openapi_extra=_if_match_parameter(required=False),
        tags=["services"],
    )
    async def delete_service(service_name: ServiceNamePath, request: Request) -> Response:
        revision = parse_if_match(request.headers.get("if-match"), required=False)
        await repository.delete(service_name, revision)
        return Response(status_code=204)

    return app
