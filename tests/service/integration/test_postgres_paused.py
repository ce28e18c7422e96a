"""PostgreSQL paused under the reference service (SIGSTOP locally, the engine's pause on docker): the
database neither refuses nor drops connections, it just stops answering.  Readiness must notice within
its own bound, and the audit pipeline must hold what arrives meanwhile and store it once after."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from audit_support import event, new_database, publish, wait_all_acked

from aegis_service.adapters.postgres.db import STATUS_TIMEOUT
from pytest_aegis import assert_no_event_lost
from pytest_aegis.waiting import Poll, async_wait_until

pytestmark = pytest.mark.asyncio

PAUSE = 3.0
#: A readiness request that takes longer than this has hung: the service bounds its database check
#: at ``STATUS_TIMEOUT`` (1 s) whatever the database does, and says so in its answer; the rest is a
#: margin for both cores busy (a request that hangs never answers at all).
REQUEST_TIMEOUT = STATUS_TIMEOUT + 4


async def _readiness(http: httpx.AsyncClient) -> httpx.Response:
    """/readiness, raising ``httpx.ReadTimeout`` when the service takes longer than its own bound."""
    return await http.get("/readiness", timeout=REQUEST_TIMEOUT)


async def test_postgres_paused_for_3s_readiness_is_503_meanwhile_and_no_event_is_lost_or_doubled(
    audit_stack, postgres_server_factory
):
    server = postgres_server_factory()
    stack = audit_stack(dsn=new_database(server, "audit_paused"))
    nc = await stack.nats.connect()
    try:
        js = nc.jetstream()
        before = await publish(js, [event() for _ in range(200)])
        await assert_no_event_lost(stack.dsn, before, within=10, strict=True)
        async with stack.http() as http:
            assert (await _readiness(http)).status_code == 200  # its pooled connection is idle now
            with server.paused():
                hold = Poll(PAUSE)  # the pause lasts PAUSE seconds from here at least
                during = await publish(js, [event() for _ in range(300)])
                ready = await async_wait_until(
                    lambda: _readiness(http),
                    "/readiness to answer 503 while PostgreSQL is paused",
                    timeout=REQUEST_TIMEOUT,
                    ok=lambda r: r.status_code == 503,
                )
                # Noticed while the database is still paused, at the service's own bound on its check
                # (no answer, or no pooled connection, within STATUS_TIMEOUT), not by an error.
                assert server.is_paused
                body = ready.json()
                assert body["ready"] is False and body["database"]["status"] == "down", body
                bound = rf"no (answer|connection) within {STATUS_TIMEOUT:g}s"
                assert re.fullmatch(bound, body["database"].get("detail", "")), body
                assert [r for r in body["reasons"] if r.startswith("database: ")], body
                # Still paused: still not ready, until the pause has lasted PAUSE s (at least one
                # more check, however long the publishing and the noticing took).
                async for _ in hold.aiter():
                    assert (await _readiness(http)).status_code == 503
                assert server.is_paused and time.monotonic() >= hold.deadline
            await async_wait_until(
                lambda: _readiness(http),
                "/readiness to answer 200 once PostgreSQL runs again",
                timeout=10,
                ok=lambda r: r.status_code == 200,
            )
        await assert_no_event_lost(stack.dsn, before + during, within=30, strict=True)
        await wait_all_acked(js, 500, timeout=30)
    finally:
        await nc.close()
