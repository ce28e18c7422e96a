"""The reference service speaks the NATS services protocol (ADR-32) on a secured server: PING,
INFO (its endpoint and version) and STATS, as nats.micro and every official client serve them."""

from __future__ import annotations

import json

import pytest

import aegis_service
from pytest_aegis import AppProcess, assert_micro_ping, assert_micro_service, micro_stats

pytestmark = [pytest.mark.asyncio, pytest.mark.nats_secure(auth="userpass", tls=True)]


async def test_ping_info_and_stats(aegis_app: AppProcess, nats_client) -> None:
    name = aegis_app.service_name
    ping = await assert_micro_ping(nats_client, name)
    info = await assert_micro_service(
        nats_client, name, endpoints={"health": f"{name}.health"}, version=aegis_service.__version__
    )
    assert info["id"] == ping["id"]
    assert info["metadata"] == {"instanceId": aegis_app.instance_id}

    reply = await nats_client.request(f"{name}.health", b"", timeout=2)
    assert json.loads(reply.data)["service"] == name
    stats = await micro_stats(nats_client, name)
    (health,) = stats["endpoints"]
    assert (health["name"], health["num_requests"], health["num_errors"]) == ("health", 1, 0)


async def test_a_mismatch_lists_what_the_service_said(aegis_app: AppProcess, nats_client) -> None:
    name = aegis_app.service_name
    with pytest.raises(AssertionError) as failure:
        await assert_micro_service(
            nats_client, name, endpoints=["health", "orders"], version="9.9.9", within=0.3
        )
    message = str(failure.value)
    assert f"expected the INFO of {name!r} on '$SRV.INFO.{name}'" in message
    assert "version='0.1.0', expected '9.9.9'" in message.replace(aegis_service.__version__, "0.1.0")
    assert "endpoints ['health'], expected ['health', 'orders']" in message
    assert '"type": "io.nats.micro.v1.info_response"' in message  # the reply body, as seen

    with pytest.raises(AssertionError, match="no responders: the server says nobody is subscribed"):
        await micro_stats(nats_client, "no-such-service", within=5)
