"""The reference service against real, secured NATS: health checks and the KV registry."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from pytest_aegis import (
    ServiceInstance,
    assert_app_refuses_to_start,
    assert_health_check,
    assert_instance_registered,
    assert_registration_expires,
)
from pytest_aegis.waiting import async_wait_until

pytestmark = pytest.mark.asyncio
TTL = 2.0


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("userpass", marks=pytest.mark.nats_secure(auth="userpass")),
        pytest.param("token", marks=pytest.mark.nats_secure(auth="token")),
        pytest.param("nkey", marks=pytest.mark.nats_secure(auth="nkey")),
        pytest.param("jwt", marks=pytest.mark.nats_secure(auth="jwt")),
        pytest.param("mtls+jwt", marks=pytest.mark.nats_secure(auth="jwt", mtls=True)),
    ],
)
async def test_health_check_over_tls_and_auth(aegis_app, nats_client, mode):
    doc = await assert_health_check(nats_client, service=aegis_app.service_name)
    assert doc["instanceId"] == aegis_app.instance_id
    assert doc["nats"]["connected"] is True
    assert doc["uptimeSeconds"] >= 0
    assert {"nats", "kvRegistry"} <= set(doc["checks"])
    assert aegis_app.nats.url.startswith("tls://")


@pytest.mark.nats_secure
async def test_health_helper_reports_near_misses(aegis_app, nats_client):
    with pytest.raises(
        AssertionError, match=r"(?s)expected a reply from service='someone-else'.*service='svc-"
    ):
        await assert_health_check(nats_client, service="someone-else", within=0.2)
    with pytest.raises(AssertionError, match="no responders"):
        await assert_health_check(nats_client, "health.nobody-listens", within=0.05)


async def test_registration_visible_within_one_second_of_start(fast_app, nats_client):
    started = time.monotonic()
    app = fast_app()
    elapsed = time.monotonic() - started
    instance = await assert_instance_registered(
        nats_client, app.service_name, app.instance_id, within=max(0.0, 1.0 - elapsed)
    )
    assert isinstance(instance, ServiceInstance)
    assert instance.status == "ACTIVE" and instance.instance_id == app.instance_id
    assert instance.last_heartbeat.tzinfo is not None
    assert abs(instance.last_heartbeat - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


async def test_heartbeats_move_last_heartbeat_forward(fast_app, nats_client):
    app = fast_app()
    first = await assert_instance_registered(nats_client, app.service_name, app.instance_id)

    async def newer():
        entry = await assert_instance_registered(nats_client, app.service_name, app.instance_id)
        return entry.last_heartbeat > first.last_heartbeat

    await async_wait_until(newer, "a heartbeat to advance lastHeartbeat", timeout=3 * TTL)


async def test_kill_9_entry_expires_within_ttl_and_restart_reregisters(fast_app, nats_client):
    app = fast_app()
    await assert_instance_registered(nats_client, app.service_name, app.instance_id)
    app.kill()
    await assert_registration_expires(nats_client, app.service_name, app.instance_id, within=TTL + 1.5)
    app.restart()
    again = await assert_instance_registered(nats_client, app.service_name, app.instance_id, within=1.0)
    assert again.status == "ACTIVE"


async def test_graceful_stop_deregisters_at_once(fast_app, nats_client):
    app = fast_app()
    await assert_instance_registered(nats_client, app.service_name, app.instance_id)
    assert app.stop() == 0
    await assert_registration_expires(nats_client, app.service_name, app.instance_id, within=0.5)


async def test_expiry_helper_fails_while_the_instance_lives(fast_app, nats_client):
    app = fast_app()
    with pytest.raises(AssertionError, match="still there"):
        await assert_registration_expires(nats_client, app.service_name, app.instance_id, within=0.3)


@pytest.mark.nats_secure
async def test_several_instances_of_one_service_are_all_listed(fast_app, nats_client):
    apps = [fast_app() for _ in range(3)]
    for app in apps:
        await assert_instance_registered(nats_client, app.service_name, app.instance_id)
    assert len({app.instance_id for app in apps}) == 3
    assert len({app.http_url for app in apps}) == 3
    with pytest.raises(AssertionError, match="registration: expected instance 'nope'"):
        await assert_instance_registered(nats_client, apps[0].service_name, "nope", within=0.1)


async def test_a_lost_entry_is_recreated_by_the_next_heartbeat(fast_app, nats_client):
    app = fast_app()
    await assert_instance_registered(nats_client, app.service_name, app.instance_id)
    kv = await nats_client.jetstream().key_value("service-instances")
    await kv.delete(f"{app.service_name}.{app.instance_id}")
    await assert_registration_expires(nats_client, app.service_name, app.instance_id, within=0.5)
    await assert_instance_registered(nats_client, app.service_name, app.instance_id, within=TTL)


async def test_failing_heartbeats_mark_the_instance_unhealthy_and_recovery_clears_it(
    nats_server_factory, fast_app, nats_client
):
    import httpx

    server = nats_server_factory(auth="userpass", tls=True)
    app = fast_app(nats=server)
    async with httpx.AsyncClient(base_url=app.http_url, timeout=5) as http:
        server.stop()

        async def registry_state(wanted):
            doc = (await http.get("/healthz")).json()
            return doc["checks"]["kvRegistry"]["status"] == wanted and doc["status"] == wanted

        await async_wait_until(
            lambda: registry_state("unhealthy"),
            "the registry check to turn unhealthy",
            timeout=10,
            interval=0.05,
            max_interval=0.25,
        )
        restarted_at = dt.datetime.now(dt.UTC)
        server.restart()
        nc = await server.connect()
        try:

            async def active_after_restart():
                found = await assert_instance_registered(nc, app.service_name, app.instance_id, within=2)
                return found.status == "ACTIVE" and found.last_heartbeat > restarted_at

            await async_wait_until(
                active_after_restart,
                "a fresh ACTIVE heartbeat after NATS restarts",
                timeout=10,
                transient=(AssertionError,),
            )
            await async_wait_until(lambda: registry_state("healthy"), "/healthz to recover", timeout=10)
            await assert_health_check(nc, service=app.service_name, within=0.5)
        finally:
            await nc.close()


@pytest.mark.nats_secure(permissions={"subscribe": {"deny": ["health.check", "health.check.>"]}})
async def test_a_denied_health_subscription_makes_the_service_refuse_to_start(aegis_app_factory):
    # It would otherwise announce READY and never answer a health check.
    refusal = assert_app_refuses_to_start(aegis_app_factory, reason="permissions", within=10)
    assert refusal.exit_code == 1
    assert "startup failed: the NATS server denied the subscription to health.check" in refusal.app_log
    assert "AEGIS-SERVICE READY" not in refusal.app_log
