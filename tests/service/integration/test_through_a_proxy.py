"""The reference service behind a FaultProxy (its NATS connection only; the test's own client and
the HTTP probes go direct): latency, a half-open connection, a connection cut mid-burst.  Each
creates the condition it needs and asserts the exact outcome."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import nats.errors
import pytest
from audit_support import FAST_AUDIT, count_rows, event, publish
from nats.aio.client import Client

from pytest_aegis import AppProcess, NatsServer, assert_health_check, assert_no_event_lost
from pytest_aegis.waiting import async_wait_until

pytestmark = pytest.mark.asyncio
#: Pings every 0.5 s, stale after 2 unanswered: a silent connection is noticed within ~1.5 s.
PINGS = {"AEGIS_NATS_PING_INTERVAL": "0.5", "AEGIS_NATS_MAX_OUTSTANDING_PINGS": "2"}


async def readiness(app: AppProcess) -> int:
    async with httpx.AsyncClient(base_url=app.http_url, timeout=5) as http:
        return (await http.get("/readiness")).status_code


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_health_is_still_answered_through_200_ms_of_latency(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any, aegis_app_factory: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    app = aegis_app_factory(nats=proxy)
    with proxy.latency(200):
        # The request reaches the service 200 ms late and its reply leaves 200 ms late.
        with pytest.raises(nats.errors.TimeoutError):
            await nats_client.request("health.check", b"", timeout=0.3)
        await assert_health_check(nats_client, service=app.service_name, within=5)
    assert proxy.forwarded("upstream") > 0 and proxy.forwarded("downstream") > 0


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_a_5_s_blackhole_is_noticed_and_survived(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any, aegis_app_factory: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    app = aegis_app_factory(nats=proxy, env=PINGS)
    assert await readiness(app) == 200
    started = time.monotonic()
    with proxy.blackhole():
        # Noticed: pings unanswered, the connection is declared stale, readiness says so.
        await async_wait_until(
            lambda: readiness(app), "readiness 503 (NATS lost)", timeout=5, ok=lambda s: s == 503
        )
        with pytest.raises(nats.errors.TimeoutError):
            await nats_client.request("health.check", b"", timeout=0.5)  # nobody answers
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - started)))  # the fault lasts 5 s
    # Survived: it reconnects through the healed path and is healthy again.
    await async_wait_until(lambda: readiness(app), "readiness 200 again", timeout=20, ok=lambda s: s == 200)
    await assert_health_check(nats_client, service=app.service_name, within=5)
    assert app.is_running


async def test_a_cut_mid_burst_of_5000_audit_events_loses_and_duplicates_nothing(
    nats_server_factory: Any, audit_db: Any, aegis_proxy: Any, fast_app: Any
) -> None:
    server = nats_server_factory(jetstream=True)
    proxy = aegis_proxy(server)
    fast_app(nats=proxy, env={"AEGIS_DATABASE_URL": audit_db.dsn, **FAST_AUDIT, **PINGS})
    nc = await server.connect()  # the producer goes direct
    try:
        # Mid-burst by construction: 5,000 events at 20 kB/s to the consumer take minutes, so
        # the cut lands with some stored and most not.
        with proxy.bandwidth(20_000, direction="downstream"):
            ids = await publish(nc.jetstream(), [event() for _ in range(5000)])
            stored = await async_wait_until(
                lambda: asyncio.to_thread(count_rows, audit_db.dsn),
                "the first events to be stored",
                timeout=30,
                ok=lambda n: n > 0,
            )
            assert stored < 5000, "the burst was over before the cut: nothing was tested"
            proxy.cut()
        await assert_no_event_lost(audit_db.dsn, ids, within=60, strict=True)
    finally:
        await nc.close()
    assert proxy.accepted >= 2, "the service reconnected through the proxy after the cut"
