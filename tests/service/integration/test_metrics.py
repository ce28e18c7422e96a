"""``/metrics`` of the reference service against real NATS and PostgreSQL: scraped over HTTP and
parsed with prometheus_client's parser, each value checked after the test caused it."""

from __future__ import annotations

import math
import secrets

import httpx
import psycopg
import pytest
import pytest_asyncio
from audit_support import consumer_info, event, publish, wait_all_acked
from metrics_support import delta, scrape

from aegis_service.domain.events import REJECTION_CODES
from pytest_aegis.waiting import async_wait_until

pytestmark = pytest.mark.asyncio


def definition(name: str) -> dict[str, str]:
    return {"serviceName": name, "owner": "team-a", "version": "1.2.3"}


@pytest_asyncio.fixture
async def http(aegis_app):
    async with httpx.AsyncClient(base_url=aegis_app.http_url, timeout=10) as client:
        yield client


@pytest.mark.nats_secure
async def test_metrics_are_served_in_the_prometheus_text_format(http):
    metrics = await scrape(http)
    kinds = {name: family.type for name, family in metrics.families.items()}
    assert {
        "aegis_nats_connected": "gauge",
        "aegis_nats_reconnects": "counter",
        "aegis_health_request_duration_seconds": "histogram",
        "aegis_registry_operations": "counter",
        "aegis_audit_consumer_pending_messages": "gauge",
        "aegis_audit_dead_letters": "counter",
    }.items() <= kinds.items()
    assert metrics.value("aegis_nats_connected") == 1.0
    assert metrics.value("aegis_nats_reconnects_total") == 0.0
    # No AEGIS_DATABASE_URL: no audit pipeline, so nothing is pending and its pending count is unknown.
    assert math.isnan(metrics.value("aegis_audit_consumer_pending_messages"))
    assert {
        code: metrics.value("aegis_audit_dead_letters_total", reason=code) for code in REJECTION_CODES
    } == {code: 0.0 for code in REJECTION_CODES}
    assert metrics.value("process_resident_memory_bytes") > 0  # the process collector, on the app's registry


@pytest.mark.nats_secure
async def test_openmetrics_is_served_when_asked_for(http):
    response = await http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    assert "aegis_nats_connected 1.0\n" in response.text


@pytest.mark.nats_secure
async def test_each_health_request_is_timed_once(aegis_app, nats_client, http):
    before = await scrape(http)
    subject = aegis_app.env["AEGIS_HEALTH_SUBJECT"]
    await nats_client.request(subject, b"", timeout=2)
    await nats_client.request(f"{subject}.{aegis_app.instance_id}", b"", timeout=2)
    await nats_client.request(f"{aegis_app.service_name}.health", b"", timeout=2)  # the services protocol
    for path in ("/healthz", "/health", "/readiness"):
        assert (await http.get(path)).status_code == 200
    after = await scrape(http)
    assert delta(before.health_counts(), after.health_counts()) == {
        ("nats", "health-subject"): 2,
        ("nats", "micro"): 1,
        ("http", "/healthz"): 1,
        ("http", "/health"): 1,
        ("http", "/readiness"): 1,
    }
    labels = {"transport": "nats", "endpoint": "health-subject"}
    name = "aegis_health_request_duration_seconds"
    assert after.value(f"{name}_sum", **labels) > before.value(f"{name}_sum", **labels)
    assert after.value(f"{name}_bucket", **labels, le="+Inf") == after.value(f"{name}_count", **labels)


@pytest.mark.nats_secure
async def test_registry_operations_are_counted_by_operation_and_status(http):
    before = (await scrape(http)).registry_operations()
    name = f"metrics-{secrets.token_hex(4)}"
    body = definition(name)
    assert (await http.post("/api/services", json=body)).status_code == 201
    assert (await http.post("/api/services", json=body)).status_code == 409
    assert (await http.get(f"/api/services/{name}")).status_code == 200
    assert (await http.get(f"/api/services/{name}-missing")).status_code == 404
    stale = await http.put(f"/api/services/{name}", json=body, headers={"If-Match": '"999999"'})
    assert stale.status_code == 409
    assert (await http.get("/api/services")).status_code == 200
    assert (await http.delete(f"/api/services/{name}")).status_code == 204
    # Refused by the HTTP layer before any registry operation runs: not counted.
    assert (await http.get("/api/services", params={"limit": 0})).status_code == 422
    after = (await scrape(http)).registry_operations()
    assert delta(before, after) == {
        ("create", "ok"): 1,
        ("create", "conflict"): 1,
        ("get", "ok"): 1,
        ("get", "not_found"): 1,
        ("update", "conflict"): 1,
        ("list", "ok"): 1,
        ("delete", "ok"): 1,
    }


async def test_nats_restart_counts_one_reconnect(nats_server_factory, aegis_app_factory):
    server = nats_server_factory(auth="userpass", tls=True)  # its own server: the test restarts it
    app = aegis_app_factory(nats=server)
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as http:
        first = await scrape(http)
        assert (first.value("aegis_nats_connected"), first.value("aegis_nats_reconnects_total")) == (1, 0)

        server.stop()
        down = await async_wait_until(
            lambda: scrape(http),
            "the connection gauge to drop to 0",
            timeout=10,
            ok=lambda m: m.value("aegis_nats_connected") == 0,
        )
        assert down.value("aegis_nats_reconnects_total") == 0
        assert (await http.get("/api/services")).status_code == 503
        unavailable = (await scrape(http)).value(
            "aegis_registry_operations_total", operation="list", status="unavailable"
        )
        assert unavailable == 1

        server.restart()
        # The gauge is sampled at scrape time, the counter bumped by nats-py's reconnected
        # callback, which runs just after: wait for both, then the count must be exactly one.
        up = await async_wait_until(
            lambda: scrape(http),
            "the connection gauge to be 1 again and the reconnect counted",
            timeout=15,
            ok=lambda m: m.value("aegis_nats_connected") == 1 and m.value("aegis_nats_reconnects_total") >= 1,
        )
        assert up.value("aegis_nats_reconnects_total") == 1


async def test_audit_metrics_count_dead_letters_and_pending_messages(audit_stack):
    stack = audit_stack()
    nc = await stack.nats.connect()
    try:
        js = nc.jetstream()
        async with stack.http() as http:
            await publish(js, [event()])
            await wait_all_acked(js, 1)
            idle = await scrape(http)
            assert idle.value("aegis_audit_consumer_pending_messages") == 0
            assert all(idle.value("aegis_audit_dead_letters_total", reason=c) == 0 for c in REJECTION_CODES)

            await js.publish("audit.test.broken", b'{"id": "x", "type": ')
            await js.publish("audit.test.broken", b"[1, 2]")
            await publish(js, [event()])
            await wait_all_acked(js, 4)
            dead = await scrape(http)
            assert {c: dead.value("aegis_audit_dead_letters_total", reason=c) for c in REJECTION_CODES} == {
                c: (1.0 if c in ("bad_json", "not_object") else 0.0) for c in REJECTION_CODES
            }
            await _assert_pending_while_the_table_is_locked(stack.dsn, js, http, count=5)
            await wait_all_acked(js, 9)
            assert (await scrape(http)).value("aegis_audit_consumer_pending_messages") == 0
    finally:
        await nc.close()


async def _assert_pending_while_the_table_is_locked(dsn, js, http, count: int) -> None:
    """With audit_events locked the consumer cannot store (nor ack) what it fetches: the gauge shows
    exactly the ``count`` messages published meanwhile."""
    async with await psycopg.AsyncConnection.connect(dsn) as holder:
        await holder.execute("LOCK TABLE audit_events IN EXCLUSIVE MODE")
        await publish(js, [event() for _ in range(count)])
        await async_wait_until(
            lambda: consumer_info(js),
            "the consumer to hold the new messages unacknowledged",
            timeout=10,
            ok=lambda info: info.num_ack_pending > 0 and info.num_pending + info.num_ack_pending == count,
        )
        assert (await scrape(http)).value("aegis_audit_consumer_pending_messages") == count
        await holder.rollback()
