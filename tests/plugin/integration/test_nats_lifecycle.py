"""The NatsServer handle against real servers: URLs, logs, stop/kill/restart."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest


@pytest.mark.asyncio
async def test_handle_describes_the_running_server(nats_server):
    assert nats_server.url.startswith("nats://127.0.0.1:")
    assert nats_server.port > 0 and nats_server.is_running
    with urllib.request.urlopen(f"{nats_server.monitor_url}/varz", timeout=5) as response:
        varz = json.load(response)
    assert varz["version"] == nats_server.version
    assert varz["port"] == nats_server.port
    assert varz["jetstream"]["config"]["store_dir"]
    assert "Server is ready" in nats_server.logs()


@pytest.mark.asyncio
async def test_restart_keeps_port_and_jetstream_store(nats_server_factory):
    server = nats_server_factory(auth="userpass", tls=True)
    port = server.port
    nc = await server.connect()
    js = nc.jetstream()
    await js.add_stream(name="KEEP", subjects=["keep.>"])
    await js.publish("keep.one", b"survives restarts")
    await nc.close()

    server.restart()

    assert server.port == port and server.is_running
    nc = await server.connect()
    msg = await nc.jetstream().get_msg("KEEP", 1)
    assert msg.data == b"survives restarts"
    await nc.close()


@pytest.mark.asyncio
async def test_kill_is_a_crash_and_restart_recovers(nats_server_factory):
    server = nats_server_factory(auth="token", tls=False)
    pid = server.pid
    server.kill()
    assert not server.is_running
    assert "Server Exiting" not in server.logs()  # no graceful shutdown on SIGKILL
    server.restart()
    assert server.pid != pid and server.is_running
    nc = await server.connect()
    await nc.close()


@pytest.mark.asyncio
async def test_stop_is_graceful(nats_server_factory):
    server = nats_server_factory(auth="none", tls=False)
    server.stop()
    assert not server.is_running
    assert "Server Exiting" in server.logs()


@pytest.mark.asyncio
async def test_client_reconnects_across_restart(nats_server_factory):
    server = nats_server_factory(auth="userpass", tls=True)
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await server.connect(reconnected_cb=on_reconnect)
    server.kill()
    server.restart()
    await asyncio.wait_for(reconnected.wait(), 5)
    sub = await nc.subscribe("after.restart")
    await nc.publish("after.restart", b"ok")
    assert (await sub.next_msg(timeout=5)).data == b"ok"
    await nc.close()


def test_connect_kwargs_overrides(nats_server_factory):
    server = nats_server_factory(auth="userpass", tls=True, users={"alice": {"password": "pw-alice"}})
    base = server.connect_kwargs()
    assert base["user"] == "aegis" and base["tls"] is not None and base["servers"] == [server.url]
    assert "password" not in server.connect_kwargs(password=None)
    assert "tls" not in server.connect_kwargs(tls=None)
    assert server.connect_kwargs(as_user="alice")["password"] == "pw-alice"
    with pytest.raises(KeyError, match=r"no user 'bob'.*aegis, alice"):
        server.connect_kwargs(as_user="bob")


def test_env_points_a_service_at_the_server(nats_server_factory):
    server = nats_server_factory(auth="jwt", tls=True, mtls=True)
    env = server.env()
    assert env["AEGIS_NATS_URL"] == server.url
    for key in ("AEGIS_NATS_CREDS_FILE", "AEGIS_NATS_TLS_CA", "AEGIS_NATS_TLS_CERT", "AEGIS_NATS_TLS_KEY"):
        assert key in env
    assert "BEGIN NATS USER JWT" in Path(env["AEGIS_NATS_CREDS_FILE"]).read_text()


def test_equal_specs_resolve_to_the_same_server_object(nats_server_factory, pytestconfig):
    from pytest_aegis.harness import get_harness
    from pytest_aegis.natsd.spec import NatsSpec

    pool = get_harness(pytestconfig).nats
    assert pool.get(NatsSpec(auth="nkey")) is pool.get(NatsSpec(auth="nkey", tls=True))
    assert pool.get(NatsSpec(auth="nkey")) is not pool.get(NatsSpec(auth="nkey", mtls=True))


@pytest.mark.nats_secure(auth="token", tls=False)
def test_different_specs_get_different_servers(nats_secure, nats_server):
    assert nats_secure.pid != nats_server.pid
    assert nats_secure.port != nats_server.port
