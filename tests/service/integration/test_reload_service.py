"""The reference service against live reloads of its NATS server: a server certificate rotated to a
new valid one (it reconnects and stays healthy) or to one from another CA (its reconnect fails
certificate verification), and its user's password changed (it is disconnected for good, and exits).

A certificate reload keeps the connections already open (TLS was negotiated), so the service is
made to reconnect by a proxy's ``cut()`` in front of its connection: TLS stays end to end through
it, and the certificate it then meets is the reloaded one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from nats.aio.client import Client

from pytest_aegis import (
    AppProcess,
    NatsServer,
    assert_health_check,
    assert_instance_registered,
    assert_registration_expires,
)
from pytest_aegis.waiting import async_wait_until
from tests.nats_support import client_id, peer_serial

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.aegis_backends(
        "local", "docker", reason="the external backend's server is not ours to reload"
    ),
]
#: Pings every 0.5 s, stale after 2 unanswered; debug lines: its failed reconnects say why.
ENV = {"AEGIS_NATS_PING_INTERVAL": "0.5", "AEGIS_NATS_MAX_OUTSTANDING_PINGS": "2", "AEGIS_LOG_LEVEL": "DEBUG"}
SHORT_TTL = {"AEGIS_REGISTRATION_TTL": "2", "AEGIS_HEARTBEAT_INTERVAL": "0.25"}


async def readiness(app: AppProcess) -> int:
    async with httpx.AsyncClient(base_url=app.http_url or "", timeout=5) as http:
        return (await http.get("/readiness")).status_code


def log_since(app: AppProcess, offset: int) -> str:
    return app.logs().encode()[offset:].decode(errors="replace")


async def logged(app: AppProcess, offset: int, said: str, *, timeout: float) -> str:
    """The service's log after ``offset`` once it says ``said``."""

    async def read() -> str:
        return log_since(app, offset)

    return await async_wait_until(
        read,
        f"the service to log {said!r}",
        timeout=timeout,
        ok=lambda text: said in text,
        hint="its log is below",
    )


async def test_a_rotation_to_a_new_valid_certificate_is_survived(
    nats_server_factory: Any, aegis_proxy: Any, aegis_app_factory: Any
) -> None:
    server: NatsServer = nats_server_factory(auth="userpass", tls=True)
    proxy = aegis_proxy(server)
    app = aegis_app_factory(nats=proxy, env=ENV)
    nc: Client = await server.connect()
    try:
        old_serial = peer_serial(nc)
        server.reload(server_cert="valid")
        fresh = await server.connect()
        new_serial = peer_serial(fresh)
        await fresh.close()
        assert new_serial != old_serial, "the server presents the new certificate"
        offset = app.log_size()
        proxy.cut()  # the service reconnects, and meets the new certificate
        await logged(app, offset, "reconnected to NATS", timeout=15)
        await async_wait_until(
            lambda: assert_health_check(nc, service=app.service_name, within=1),
            "a healthy health check after the rotation",
            timeout=15,
            transient=(AssertionError,),
        )
        assert await readiness(app) == 200
        assert "certificate verification failed" not in log_since(app, offset)
        assert proxy.accepted >= 2 and app.is_running
    finally:
        await nc.close()


async def test_a_rotation_to_a_certificate_from_another_ca_fails_its_reconnect_verification(
    nats_server_factory: Any, aegis_proxy: Any, aegis_app_factory: Any
) -> None:
    server: NatsServer = nats_server_factory(auth="userpass", tls=True)
    proxy = aegis_proxy(server)
    app = aegis_app_factory(nats=proxy, env=ENV)
    server.reload(server_cert="untrusted")
    offset = app.log_size()
    proxy.cut()
    text = await logged(app, offset, "TLS certificate verification failed", timeout=15)
    assert "TLS certificate verification failed: unable to get local issuer certificate" in text, text
    assert "reconnected to NATS" not in text
    await async_wait_until(lambda: readiness(app), "readiness 503", timeout=10, ok=lambda s: s == 503)
    assert app.is_running, "it keeps trying: a server certificate can be fixed"


async def test_a_password_changed_on_reload_disconnects_the_service_which_exits_and_leaves_the_registry(
    nats_server_factory: Any, aegis_app_factory: Any
) -> None:
    server: NatsServer = nats_server_factory(auth="userpass", tls=True)
    app = aegis_app_factory(nats=server, env={**ENV, **SHORT_TTL})
    assert await readiness(app) == 200
    nc = await server.connect()
    await assert_instance_registered(nc, app.service_name, app.instance_id)
    await nc.close()
    offset, cid = app.log_size(), client_id(server, f"{app.service_name}/{app.instance_id}")
    lines = server.reload(password="not-the-service-s-any-more")
    # The server checked the service's open connection against the new users and refused it ...
    refused = [line for line in lines if f" - cid:{cid} - " in line]
    assert refused and 'authentication error - User "aegis"' in refused[0], lines
    # ... nats-py gives up on a connection refused so (no reconnect), and the service, whose NATS
    # connection is lost for good, says so and exits with its failure code.
    await logged(app, offset, "lost for good; exiting", timeout=10)
    await async_wait_until(lambda: asyncio.to_thread(lambda: not app.is_running), "its exit", timeout=10)
    assert app.stop() == 1
    text = log_since(app, offset)
    for said in ("disconnected from NATS", "NATS connection closed for good", "lost for good; exiting"):
        assert said in text, text
    # To the rest of the system it is gone: it could not deregister, and with no heartbeat its
    # registry entry expires (read with the new password).
    nc = await server.connect()
    try:
        await assert_registration_expires(nc, app.service_name, app.instance_id, within=6)
    finally:
        await nc.close()
