"""Cursor pagination of ``GET /api/services`` against real NATS KV: every page size walks every
definition exactly once in name order, and a cursor or limit the API did not issue is a 422."""

from __future__ import annotations

import base64
import math

import httpx
import pytest
import pytest_asyncio

pytestmark = pytest.mark.asyncio

#: Created in shuffled order: the listing must sort them.
NAMES = ["pg-delta", "pg-alpha", "pg-foxtrot", "pg-charlie", "pg-echo", "pg-bravo"]


@pytest_asyncio.fixture
async def http(nats_server_factory, aegis_app_factory):
    """The service on a server of its own, so the registry holds exactly :data:`NAMES`."""
    app = aegis_app_factory(nats=nats_server_factory(auth="userpass", tls=True))
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as client:
        for name in NAMES:
            created = await client.post("/api/services", json={**BODY, "serviceName": name})
            assert created.status_code == 201, created.text
        yield client


BODY = {"owner": "team-a", "version": "1.0.0"}


async def walk(http: httpx.AsyncClient, limit: int) -> list[dict]:
    """Every page of the listing, following ``nextCursor`` until it is null."""
    pages, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor is not None else {})}
        response = await http.get("/api/services", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        cursor = page["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) <= len(NAMES), "the cursor does not advance"


@pytest.mark.parametrize("limit", range(1, len(NAMES) + 2))
async def test_pages_cover_every_definition_once_in_name_order(http, limit):
    pages = await walk(http, limit)
    assert len(pages) == math.ceil(len(NAMES) / limit)
    names = [item["serviceName"] for page in pages for item in page["items"]]
    assert names == sorted(NAMES)
    for number, page in enumerate(pages):
        expected = min(limit, len(NAMES) - number * limit)
        assert set(page) == {"items", "count", "nextCursor"}
        assert page["count"] == len(page["items"]) == expected
        assert {"owner", "version", "revision", "createdAt", "updatedAt"} <= set(page["items"][0])
    assert pages[-1]["nextCursor"] is None


async def test_without_parameters_one_page_lists_everything(http):
    page = (await http.get("/api/services")).json()
    assert ([item["serviceName"] for item in page["items"]], page["count"]) == (sorted(NAMES), len(NAMES))
    assert page["nextCursor"] is None


async def test_a_cursor_stays_valid_when_its_definition_is_deleted_or_others_are_added(http):
    first = (await http.get("/api/services", params={"limit": 2})).json()
    assert [item["serviceName"] for item in first["items"]] == ["pg-alpha", "pg-bravo"]
    assert (await http.delete("/api/services/pg-bravo")).status_code == 204
    for name in ("pg-aaa", "pg-zulu"):  # one before the cursor, one after it
        assert (await http.post("/api/services", json={**BODY, "serviceName": name})).status_code == 201
    rest = (await http.get("/api/services", params={"limit": 10, "cursor": first["nextCursor"]})).json()
    assert [item["serviceName"] for item in rest["items"]] == [
        "pg-charlie",
        "pg-delta",
        "pg-echo",
        "pg-foxtrot",
        "pg-zulu",
    ]
    assert rest["nextCursor"] is None


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_CURSORS = {
    "not base64 at all": "not a cursor!",
    "too short": "YQ",
    "impossible length": "YWJjZ",
    "decodes to a name that cannot exist": b64(b"Not-A-Name"),
    "decodes to bytes that are not text": b64(b"\xff\xfe\xfd\xfc"),
    "padded": b64(b"pg-alpha") + "==",
    "not canonical (other padding bits)": b64(b"pg-alpha")[:-1] + "F",
    "a name with a newline": b64(b"pg-alpha\n"),
}


@pytest_asyncio.fixture
async def shared_http(aegis_app):
    """Any instance will do: a bad cursor or limit is refused before the registry is read."""
    async with httpx.AsyncClient(base_url=aegis_app.http_url, timeout=10) as client:
        yield client


@pytest.mark.nats_secure
@pytest.mark.parametrize("cursor", list(BAD_CURSORS.values()), ids=list(BAD_CURSORS))
async def test_a_cursor_the_api_did_not_issue_is_422_naming_it(shared_http, cursor):
    response = await shared_http.get("/api/services", params={"cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == ["cursor"]
    assert error["message"].startswith("invalid request: cursor: ")


@pytest.mark.nats_secure
@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5", ""])
async def test_a_limit_out_of_range_is_422_naming_it(shared_http, limit):
    response = await shared_http.get("/api/services", params={"limit": limit})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == ["limit"]


async def test_the_largest_limit_is_accepted(http):
    page = (await http.get("/api/services", params={"limit": 1000})).json()
    assert page["count"] == len(NAMES) and page["nextCursor"] is None
