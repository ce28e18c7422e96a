"""The greeter service (app.py) against a real NATS server with TLS and user/password auth.

``aegis_app`` starts ``app.py`` (``aegis_app_command`` in pyproject.toml) and hands it over once
it answers ``$SRV.PING.<its name>``: ready by the services protocol, nothing else to write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from nats.aio.client import Client

from pytest_aegis import AppProcess, assert_app_refuses_to_start, assert_micro_service, micro_stats

#: The server every test here runs against: TLS (verified against the session's CA) + user/password.
secured = pytest.mark.nats_secure(auth="userpass", tls=True)

VERSION = "1.2.0"
ENDPOINTS = {"hello": "greeter.hello", "echo": "greeter.echo"}


def endpoint_stats(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {endpoint["name"]: endpoint for endpoint in stats["endpoints"]}


@pytest.mark.asyncio
@secured
async def test_it_describes_itself_in_the_services_protocol(
    aegis_app: AppProcess, nats_client: Client
) -> None:
    info = await assert_micro_service(
        nats_client, aegis_app.service_name, endpoints=ENDPOINTS, version=VERSION
    )
    assert info["id"] == aegis_app.micro_id  # the instance that answered the readiness ping
    assert aegis_app.env["GREETER_NATS_URL"].startswith("tls://")


@pytest.mark.asyncio
@secured
async def test_a_request_round_trip_is_counted_in_its_stats(
    aegis_app: AppProcess, nats_client: Client
) -> None:
    reply = await nats_client.request("greeter.hello", json.dumps({"name": "Ada"}).encode(), timeout=2)
    assert json.loads(reply.data) == {"greeting": "Hello, Ada!"}
    echoed = await nats_client.request("greeter.echo", b"ping", timeout=2)
    assert echoed.data == b"ping"

    stats = endpoint_stats(await micro_stats(nats_client, aegis_app.service_name))
    assert stats["hello"]["num_requests"] == 1 and stats["hello"]["num_errors"] == 0
    assert stats["echo"]["num_requests"] == 1 and stats["echo"]["num_errors"] == 0


@pytest.mark.asyncio
@secured
async def test_a_bad_request_gets_an_error_reply_counted_as_an_error(
    aegis_app: AppProcess, nats_client: Client
) -> None:
    reply = await nats_client.request("greeter.hello", b"not json", timeout=2)
    assert reply.headers is not None and reply.headers.get("Nats-Service-Error-Code") == "400"

    hello = endpoint_stats(await micro_stats(nats_client, aegis_app.service_name))["hello"]
    assert hello["num_requests"] == 1 and hello["num_errors"] == 1
    assert "expected" in hello["last_error"]


@secured
def test_a_wrong_password_is_refused(aegis_app_factory: Callable[..., AppProcess]) -> None:
    # The factory's env= wins over the harness's variables and their copies: only the password is wrong.
    refusal = assert_app_refuses_to_start(
        aegis_app_factory,
        reason="auth",
        match="Authorization Violation",
        env={"GREETER_NATS_PASSWORD": "wrong"},
    )
    assert refusal.exit_code == 1


@pytest.mark.nats_secure(auth="userpass", tls=True, server_cert="untrusted")
def test_a_server_certificate_from_another_ca_is_refused(
    aegis_app_factory: Callable[..., AppProcess],
) -> None:
    # The server presents a certificate the session's CA did not sign: the service must not talk to it.
    refusal = assert_app_refuses_to_start(aegis_app_factory, reason="tls", match="certificate verify failed")
    assert refusal.exit_code == 1
