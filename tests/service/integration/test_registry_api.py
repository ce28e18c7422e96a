"""The registry HTTP API of the reference service, against real NATS KV."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
import pytest_asyncio

from pytest_aegis import assert_registry_roundtrip
from pytest_aegis.waiting import async_wait_until

pytestmark = pytest.mark.asyncio


def definition(**overrides):
    body = {
        "serviceName": f"svc-{secrets.token_hex(4)}",
        "owner": "team-a",
        "description": "d",
        "version": "1.2.3",
    }
    return {**body, **overrides}


@pytest_asyncio.fixture
async def http(aegis_app):
    async with httpx.AsyncClient(base_url=aegis_app.http_url, timeout=10) as client:
        yield client


@pytest.mark.nats_secure
async def test_registry_roundtrip_over_tls_and_auth(aegis_app, nats_client):
    await assert_registry_roundtrip(aegis_app.http_url, nats_client)


@pytest.mark.nats_secure(auth="jwt", mtls=True)
async def test_registry_roundtrip_with_a_given_definition_on_mtls_jwt(aegis_app, nats_client):
    await assert_registry_roundtrip(aegis_app.http_url, nats_client, definition(description="given"))


async def test_crud_and_listing(http):
    body = definition()
    name = body["serviceName"]
    created = await http.post("/api/services", json=body)
    assert created.status_code == 201
    assert created.headers["location"] == f"/api/services/{name}"
    doc = created.json()
    assert doc["createdAt"] == doc["updatedAt"] and doc["createdAt"].endswith(("Z", "+00:00"))
    listed = (await http.get("/api/services")).json()
    assert name in [item["serviceName"] for item in listed["items"]]
    assert (await http.delete(f"/api/services/{name}")).status_code == 204
    assert (await http.get(f"/api/services/{name}")).status_code == 404
    assert (await http.delete(f"/api/services/{name}")).status_code == 404


async def test_duplicate_post_is_409(http):
    body = definition()
    assert (await http.post("/api/services", json=body)).status_code == 201
    dup = await http.post("/api/services", json=body)
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] and dup.json()["error"]["message"]


async def test_stale_revision_is_409_and_missing_if_match_is_428(http):
    body = definition()
    created = await http.post("/api/services", json=body)
    etag = created.headers["etag"]
    updated = await http.put(
        f"/api/services/{body['serviceName']}", json={**body, "owner": "team-b"}, headers={"If-Match": etag}
    )
    assert updated.status_code == 200 and updated.headers["etag"] != etag
    stale = await http.put(f"/api/services/{body['serviceName']}", json=body, headers={"If-Match": etag})
    assert stale.status_code == 409
    missing = await http.put(f"/api/services/{body['serviceName']}", json=body)
    assert missing.status_code == 428


async def test_exactly_one_of_ten_concurrent_puts_with_the_same_revision_wins(http):
    body = definition()
    etag = (await http.post("/api/services", json=body)).headers["etag"]
    puts = [
        http.put(
            f"/api/services/{body['serviceName']}",
            json={**body, "description": f"writer {i}"},
            headers={"If-Match": etag},
        )
        for i in range(10)
    ]
    statuses = sorted(r.status_code for r in await asyncio.gather(*puts))
    assert statuses == [200] + [409] * 9


LONG = "x" * 501
VALIDATION_TABLE = [
    ({"serviceName": "Ab-c"}, "serviceName"),
    ({"serviceName": "1abc"}, "serviceName"),
    ({"serviceName": "ab"}, "serviceName"),
    ({"serviceName": "a" * 65}, "serviceName"),
    ({"serviceName": "has_underscore"}, "serviceName"),
    ({"owner": ""}, "owner"),
    ({"owner": "o" * 101}, "owner"),
    ({"description": LONG}, "description"),
    ({"version": "1.0"}, "version"),
    ({"version": "v1.0.0"}, "version"),
    ({"version": "1.0.0-beta"}, "version"),
    ({"owner": None}, "owner"),
    ({"serviceName": 42}, "serviceName"),
    ({"unexpected": "field"}, "unexpected"),
]


@pytest.mark.parametrize(
    ("change", "field"), VALIDATION_TABLE, ids=[f"{f}-{i}" for i, (_, f) in enumerate(VALIDATION_TABLE)]
)
async def test_invalid_input_is_422_naming_the_field(http, change, field):
    response = await http.post("/api/services", json=definition(**change))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["message"]
    assert field in [detail["field"] for detail in error["details"]], error


async def test_missing_fields_and_malformed_json_are_422(http):
    missing = await http.post("/api/services", json={"serviceName": "abc-def"})
    assert missing.status_code == 422
    assert {"owner", "version"} <= {d["field"] for d in missing.json()["error"]["details"]}
    malformed = await http.post(
        "/api/services", content=b'{"serviceName": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "validation_error"


async def test_put_cannot_rename(http):
    body = definition()
    etag = (await http.post("/api/services", json=body)).headers["etag"]
    renamed = await http.put(
        f"/api/services/{body['serviceName']}",
        json={**body, "serviceName": "other-name"},
        headers={"If-Match": etag},
    )
    assert renamed.status_code == 422


async def test_openapi_schema_is_served(http):
    schema = (await http.get("/openapi.json")).json()
    assert {"/api/services", "/api/services/{serviceName}"} <= set(schema["paths"])


async def test_nats_down_gives_503_then_recovers(nats_server_factory, aegis_app_factory):
    server = nats_server_factory(auth="userpass", tls=True)
    app = aegis_app_factory(nats=server)
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as http:
        assert (await http.get("/api/services")).status_code == 200
        server.stop()
        down = await http.get("/api/services")
        assert down.status_code == 503
        error = down.json()["error"]
        assert error["code"] == "unavailable" and "Traceback" not in down.text
        created = await http.post("/api/services", json=definition())
        assert created.status_code == 503
        server.restart()

        async def recovered():
            return (await http.post("/api/services", json=definition())).status_code == 201

        await async_wait_until(
            recovered, "the API to recover after NATS restarts", timeout=15, interval=0.05, max_interval=0.5
        )
