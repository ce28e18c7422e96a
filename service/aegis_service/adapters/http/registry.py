"""Routes of the service-definition registry (``/api/services``): ETags are store revisions, ``If-Match``
makes writes conditional."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request, Response

from aegis_service.adapters.http.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from aegis_service.adapters.http.errors import (
    E404,
    E409,
    E422,
    E422_PAGE,
    E428,
    E500,
    E503,
    InvalidField,
    PreconditionRequired,
)
from aegis_service.definitions import DefinitionService
from aegis_service.domain.models import (
    SERVICE_NAME_PATTERN,
    ServiceDefinitionInput,
    ServiceDefinitionOut,
    ServiceDefinitionUpdate,
    ServiceList,
)

IF_MATCH_PATTERN = r'^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$'
_IF_MATCH_RE = re.compile(r'^(?:W/)?"?([0-9]{1,18})"?$')

ETAG_HEADER = {
    "ETag": {"description": 'KV revision of the entry, quoted (e.g. "7").', "schema": {"type": "string"}}
}
LOCATION_HEADER = {"Location": {"description": "URL of the new resource.", "schema": {"type": "string"}}}

#: Page size of ``GET /api/services``: by default, and at most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

ServiceNamePath = Annotated[str, Path(alias="serviceName", pattern=SERVICE_NAME_PATTERN)]
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}).")
]
CursorQuery = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="The `nextCursor` of the previous page (opaque); absent for the first page.",
    ),
]


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
    the service already built (``response_model`` still documents the schema).
    """
    return Response(
        content=definition.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={"ETag": f'"{definition.revision}"', **(headers or {})},
    )


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


def add_registry_routes(app: FastAPI, definitions: DefinitionService) -> None:
    """On the app itself, not an included router: the 405 handler's ``Allow`` lists the methods of the
    app's own routes (FastAPI keeps an included router's routes out of ``app.routes``)."""
    tags: list[str | Enum] = ["services"]

    @app.get("/api/services", response_model=ServiceList, responses={**E422_PAGE, **E500, **E503}, tags=tags)
    async def list_services(limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> ServiceList:
        """Service definitions in name order, a page at a time: follow `nextCursor` until it is null."""
        after = decode_cursor(cursor) if cursor is not None else None
        page = await definitions.page(after, limit)
        next_cursor = encode_cursor(page.next_after) if page.next_after is not None else None
        return ServiceList(items=page.items, count=len(page.items), next_cursor=next_cursor)

    @app.post(
        "/api/services",
        status_code=201,
        response_model=ServiceDefinitionOut,
        responses={201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}}, **E409, **E422, **E500, **E503},
        tags=tags,
    )
    async def create_service(body: ServiceDefinitionInput) -> Response:
        created = await definitions.create(body)
        return _definition_response(created, 201, {"Location": f"/api/services/{created.service_name}"})

    @app.get(
        "/api/services/{serviceName}",
        response_model=ServiceDefinitionOut,
        responses={200: {"headers": ETAG_HEADER}, **E404, **E422, **E500, **E503},
        tags=tags,
    )
    async def get_service(service_name: ServiceNamePath) -> Response:
        return _definition_response(await definitions.get(service_name))

    @app.put(
        "/api/services/{serviceName}",
        response_model=ServiceDefinitionOut,
        responses={200: {"headers": ETAG_HEADER}, **E404, **E409, **E422, **E428, **E500, **E503},
        openapi_extra=_if_match_parameter(required=True),
        tags=tags,
    )
    async def replace_service(
        service_name: ServiceNamePath, body: ServiceDefinitionUpdate, request: Request
    ) -> Response:
        if body.service_name is not None and body.service_name != service_name:
            raise InvalidField("serviceName", f"must match the name in the path ('{service_name}')")
        revision = parse_if_match(request.headers.get("if-match"), required=True)
        return _definition_response(await definitions.update(service_name, body, revision))

    @app.delete(
        "/api/services/{serviceName}",
        status_code=204,
        response_class=Response,
        responses={**E404, **E409, **E422, **E500, **E503},
        openapi_extra=_if_match_parameter(required=False),
        tags=tags,
    )
    async def delete_service(service_name: ServiceNamePath, request: Request) -> Response:
        revision = parse_if_match(request.headers.get("if-match"), required=False)
        await definitions.delete(service_name, revision)
        return Response(status_code=204)
