"""HTTP contract of the registry API: error shapes, status codes, ETag/If-Match and the OpenAPI document.

The KV-backed store is replaced by the in-memory one (same optimistic-locking rules), so these tests
exercise only the HTTP layer (no NATS).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from aegis_service.adapters.http.api import create_app
from aegis_service.adapters.http.registry import parse_if_match
from aegis_service.adapters.memory import MemoryDefinitionStore
from aegis_service.definitions import DefinitionService
from aegis_service.domain.errors import Unavailable
from aegis_service.domain.models import ServiceDefinitionOut


class MemoryRepository(MemoryDefinitionStore):
    """The in-memory store, with switches for an outage (503) and an unexpected error (500)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.explode = False

    async def list(self, after: str | None = None, limit: int | None = None) -> list[ServiceDefinitionOut]:
        if self.down:
            raise Unavailable("KV: NATS is not connected", retry_after=2)
        if self.explode:
            raise RuntimeError("secret internal detail")
        return await super().list(after, limit)


HEALTH = {
    "service": "demo",
    "instanceId": "i1",
    "version": "1.0.0",
    "status": "healthy",
    "nats": {"connected": True, "url": "nats://127.0.0.1:4222"},
    "uptimeSeconds": 1.5,
    "checks": {"nats": {"status": "healthy", "detail": "connected"}},
}


@pytest.fixture
def repo() -> MemoryRepository:
    return MemoryRepository()


class Client:
    """Synchronous facade over httpx's in-process ASGI transport (no server, no sockets)."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@pytest.fixture
def client(repo: MemoryRepository) -> Client:
    return Client(create_app(DefinitionService(repo), lambda: HEALTH))


BODY = {"serviceName": "billing", "owner": "team-a", "version": "1.0.0"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert "Traceback" not in response.text
    return error


def test_create_get_update_delete_with_etags(client: Client) -> None:
    created = client.post("/api/services", json=BODY)
    assert created.status_code == 201
    assert created.headers["location"] == "/api/services/billing"
    etag = created.headers["etag"]
    assert etag == '"1"'
    got = client.get("/api/services/billing")
    assert got.status_code == 200 and got.headers["etag"] == etag
    assert got.json()["revision"] == 1
    updated = client.put(
        "/api/services/billing", json={**BODY, "owner": "team-b"}, headers={"If-Match": etag}
    )
    assert updated.status_code == 200 and updated.headers["etag"] == '"2"'
    assert updated.json()["createdAt"] == got.json()["createdAt"]
    listed = client.get("/api/services").json()
    assert listed["count"] == 1 and listed["items"][0]["owner"] == "team-b"
    assert client.delete("/api/services/billing", headers={"If-Match": '"2"'}).status_code == 204
    assert_error(client.get("/api/services/billing"), 404, "not_found")


def test_duplicate_create_is_409(client: Client) -> None:
    client.post("/api/services", json=BODY)
    assert_error(client.post("/api/services", json=BODY), 409, "conflict")


def test_put_without_if_match_is_428(client: Client) -> None:
    client.post("/api/services", json=BODY)
    error = assert_error(client.put("/api/services/billing", json=BODY), 428, "precondition_required")
    assert error["details"] == [{"field": "If-Match", "message": "header is required"}]


def test_stale_if_match_is_409(client: Client) -> None:
    client.post("/api/services", json=BODY)
    client.put("/api/services/billing", json=BODY, headers={"If-Match": '"1"'})
    assert_error(client.put("/api/services/billing", json=BODY, headers={"If-Match": '"1"'}), 409, "conflict")
    assert_error(client.delete("/api/services/billing", headers={"If-Match": "1"}), 409, "conflict")


def test_malformed_if_match_is_422(client: Client) -> None:
    client.post("/api/services", json=BODY)
    error = assert_error(
        client.put("/api/services/billing", json=BODY, headers={"If-Match": "abc"}), 422, "validation_error"
    )
    assert error["details"][0]["field"] == "If-Match"


def test_put_cannot_rename(client: Client) -> None:
    client.post("/api/services", json=BODY)
    response = client.put(
        "/api/services/billing", json={**BODY, "serviceName": "other"}, headers={"If-Match": "*"}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "serviceName"


def test_validation_error_lists_every_field(client: Client) -> None:
    response = client.post(
        "/api/services", json={"serviceName": "X", "owner": "", "version": "1", "extra": 1}
    )
    error = assert_error(response, 422, "validation_error")
    assert {detail["field"] for detail in error["details"]} == {"serviceName", "owner", "version", "extra"}
    assert all(detail["message"] for detail in error["details"])


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"serviceName": ', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"[1, 2]", "application/json"),
    ],
)
def test_malformed_json_is_422_with_the_same_shape(client: Client, content: bytes, content_type: str) -> None:
    response = client.post("/api/services", content=content, headers={"content-type": content_type})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "body"


def test_invalid_path_name_is_422(client: Client) -> None:
    error = assert_error(client.get("/api/services/NOPE"), 422, "validation_error")
    assert error["details"][0]["field"] == "serviceName"


def test_unavailable_is_503_with_retry_after(client: Client, repo: MemoryRepository) -> None:
    repo.down = True
    response = client.get("/api/services")
    assert_error(response, 503, "unavailable")
    assert response.headers["retry-after"] == "2"


def test_unexpected_errors_are_500_without_details(client: Client, repo: MemoryRepository) -> None:
    repo.explode = True
    error = assert_error(client.get("/api/services"), 500, "internal_error")
    assert error == {"code": "internal_error", "message": "internal server error", "details": []}


def test_unknown_route_and_method(client: Client) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    response = client.patch("/api/services/billing")
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "PUT", "DELETE"}


def test_healthz_returns_the_health_document(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == HEALTH


def test_openapi_declares_every_error_status(client: Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("/api/services", "get"): {"200", "422", "500", "503"},
        ("/api/services", "post"): {"201", "409", "422", "500", "503"},
        ("/api/services/{serviceName}", "get"): {"200", "404", "422", "500", "503"},
        ("/api/services/{serviceName}", "put"): {"200", "404", "409", "422", "428", "500", "503"},
        ("/api/services/{serviceName}", "delete"): {"204", "404", "409", "422", "500", "503"},
        ("/healthz", "get"): {"200", "500"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status in statuses - {"200", "201", "204"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, method, status)
    put_params = {p["name"]: p for p in paths["/api/services/{serviceName}"]["put"]["parameters"]}
    assert put_params["If-Match"]["required"] is True
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.parametrize(
    ("value", "required", "expected"),
    [
        ('"7"', True, 7),
        ('W/"7"', True, 7),
        ("7", True, 7),
        (" 12 ", True, 12),
        ("*", True, None),
        (None, False, None),
    ],
)
def test_parse_if_match(value: str | None, required: bool, expected: int | None) -> None:
    assert parse_if_match(value, required=required) == expected
