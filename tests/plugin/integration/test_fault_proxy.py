"""aegis_proxy: every fault on a real connection through a real, secured NATS server (TLS + user/
password) or a real PostgreSQL; TLS stays end to end; nothing listens after the test, nor after
a kill -9 of pytest."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from pathlib import Path
from typing import Any

import nats.errors
import psycopg
import pytest
from nats.aio.client import Client
from support import kill_9_hanging_session, refused, session_env

from pytest_aegis import (
    NatsConnectError,
    NatsFaultProxy,
    NatsServer,
    PostgresFaultProxy,
    assert_connection_rejected,
)
from pytest_aegis.postgres import PostgresDatabase
from pytest_aegis.waiting import wait_until

secured = pytest.mark.nats_secure(auth="userpass", tls=True)
pytestmark = secured


async def echo(nc: Client, subject: str) -> None:
    async def answer(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=answer)
    await nc.flush()


@pytest.mark.asyncio
async def test_bytes_pass_untouched_and_tls_is_still_verified_end_to_end(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy: NatsFaultProxy = aegis_proxy(nats_secure)
    assert proxy.url == f"tls://127.0.0.1:{proxy.port}" and proxy.port != nats_secure.port
    await echo(nats_client, "echo.proxy")
    nc = await proxy.connect()
    try:
        assert (await nc.request("echo.proxy", b"x" * 100_000, timeout=2)).data == b"x" * 100_000
        assert nc.connected_url is not None and nc.connected_url.port == proxy.port
    finally:
        await nc.close()
    assert proxy.forwarded("upstream") > 100_000 and proxy.forwarded("downstream") > 100_000
    # The proxy does not terminate TLS: without the session CA the server's certificate fails.
    await assert_connection_rejected(proxy.server, reason="tls", tls=None)


@pytest.mark.asyncio
async def test_latency_delays_each_way_and_is_removed_on_exit(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    await echo(nats_client, "echo.slow")
    nc = await proxy.connect()
    try:
        with proxy.latency(300, direction="downstream"):
            with pytest.raises(nats.errors.TimeoutError):
                await nc.request("echo.slow", b"1", timeout=0.15)  # the reply is 300 ms late
            assert (await nc.request("echo.slow", b"2", timeout=3)).data == b"2"
        assert (await nc.request("echo.slow", b"3", timeout=0.15)).data == b"3"
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_bandwidth_limits_what_gets_through(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    nc = await proxy.connect()
    try:
        sub = await nc.subscribe("big")
        await nc.flush()
        with proxy.bandwidth(20_000, direction="downstream"):  # 200 kB needs 10 s
            await nats_client.publish("big", b"b" * 200_000)
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=1)
        assert len((await sub.next_msg(timeout=5)).data) == 200_000
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_a_blackhole_holds_the_connection_open_and_forwards_nothing_until_healed(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    await echo(nats_client, "echo.hole")
    nc = await proxy.connect(allow_reconnect=False)
    try:
        proxy.blackhole()
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request("echo.hole", b"lost?", timeout=0.5)
        assert nc.is_connected and proxy.connections == 1, "half-open: the connection stays"
        proxy.heal()
        assert (await nc.request("echo.hole", b"back", timeout=2)).data == b"back"
        assert nc.stats["reconnects"] == 0
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_a_one_way_blackhole_lets_the_other_way_through(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    direct = await nats_client.subscribe("oneway")
    nc = await proxy.connect()
    try:
        mine = await nc.subscribe("oneway")
        await nc.flush()
        with proxy.blackhole(direction="downstream"):
            await nc.publish("oneway", b"up")  # upstream flows: the server gets it
            assert (await direct.next_msg(timeout=2)).data == b"up"
            with pytest.raises(nats.errors.TimeoutError):
                await mine.next_msg(timeout=0.5)  # downstream is held
        assert (await mine.next_msg(timeout=2)).data == b"up", "held bytes flow after the fault"
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_cut_resets_open_connections_and_the_client_reconnects(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    await echo(nats_client, "echo.cut")
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await proxy.connect(reconnected_cb=on_reconnect, reconnect_time_wait=0.05)
    try:
        proxy.cut()
        await asyncio.wait_for(reconnected.wait(), 10)
        assert nc.stats["reconnects"] == 1 and proxy.accepted == 2
        assert (await nc.request("echo.cut", b"again", timeout=2)).data == b"again"
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_cut_as_a_context_resets_new_connections_until_it_ends(
    nats_secure: NatsServer, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    with proxy.cut():
        with pytest.raises(NatsConnectError, match=r"\(reset\): builtins\.ConnectionResetError"):
            await proxy.connect(allow_reconnect=False, deadline=5)
    nc = await proxy.connect()
    await nc.close()


@pytest.mark.asyncio
async def test_refuse_refuses_new_connections_and_spares_open_ones(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)
    await echo(nats_client, "echo.refuse")
    nc = await proxy.connect()
    try:
        with proxy.refuse():
            assert refused(proxy.port)
            assert (await nc.request("echo.refuse", b"open", timeout=2)).data == b"open"
        assert not refused(proxy.port)
        with proxy.refuse(direction="upstream"):  # accepted, then reset: the server is not reached
            with pytest.raises(ConnectionResetError):
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as raw:
                    raw.recv(1)
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_bad_fault_arguments_name_what_is_wrong(nats_secure: NatsServer, aegis_proxy: Any) -> None:
    proxy = aegis_proxy(nats_secure)
    with pytest.raises(ValueError, match=r"direction='sideways' is not one of: both, upstream, downstream"):
        proxy.latency(10, direction="sideways")
    with pytest.raises(ValueError, match=r"ms=-1: expected a number >= 0"):
        proxy.latency(-1)
    with pytest.raises(ValueError, match=r"bytes_per_second=0: expected a number > 0"):
        proxy.bandwidth(0)
    with pytest.raises(TypeError, match=r"aegis_proxy\('nats://x'\): expected a NatsServer"):
        aegis_proxy("nats://x")


def test_postgres_through_a_proxy_cut_and_blackhole(postgres_db: PostgresDatabase, aegis_proxy: Any) -> None:
    proxy: PostgresFaultProxy = aegis_proxy(postgres_db)
    assert f":{proxy.port}/{postgres_db.name}" in proxy.dsn
    with proxy.connect(autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (postgres_db.name,)
        proxy.cut()
        with pytest.raises(psycopg.OperationalError, match=r"(?i)server closed the connection|reset|lost"):
            conn.execute("SELECT 1")
    with proxy.blackhole():
        with pytest.raises(psycopg.OperationalError, match=r"(?i)timeout"):
            proxy.connect(connect_timeout=1)
    with proxy.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


HOLDER = textwrap.dedent("""
    import json, os, pathlib, threading

    def test_holds(nats_server, aegis_proxy):
        proxy = aegis_proxy(nats_server)
        pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps({"port": proxy.port}))
        threading.Event().wait()  # until killed
""")


def test_kill_9_of_pytest_leaves_no_listening_proxy_port(tmp_path: Path) -> None:
    (tmp_path / "test_hold.py").write_text(HOLDER)
    env = session_env(tmp_path / "state", tmp_path / "pids.json")
    info = kill_9_hanging_session("test_hold.py", env, tmp_path, tmp_path / "pids.json")
    wait_until(lambda: refused(info["port"]), "the proxy's port to be closed", timeout=10)
