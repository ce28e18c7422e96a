"""Lame-duck mode and rolling restarts on real servers: ``NatsServer.lame_duck()`` makes the server
stop accepting clients, tell its clients, hand its stream leaderships over and exit; a cluster's
``rolling_restart()`` takes every node through that in turn while a JetStream workload writes,
and every acknowledged write is there once afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import refused

from pytest_aegis import LameDuckError, NatsCluster, assert_no_acked_write_lost
from pytest_aegis.natsd.lameduck import ENTERING
from pytest_aegis.waiting import async_wait_until, wait_until
from tests.nats_support import write_until

#: Short lame-duck settings (nats-server's defaults are 2 min and 10 s; 30 s is the shortest
#: duration it takes, and with a few clients it closes them at most 1 s apart and exits).
QUICK = {"lame_duck_duration": 30, "lame_duck_grace_period": 1}
STREAM = "ROLLING"


@pytest.mark.asyncio
async def test_a_server_in_lame_duck_mode_tells_its_clients_stops_accepting_and_exits(
    nats_server_factory: Any,
) -> None:
    server = nats_server_factory(auth="userpass", tls=True, **QUICK)
    told = asyncio.Event()

    async def lame_duck_cb() -> None:
        told.set()

    nc = await server.connect(lame_duck_mode_cb=lame_duck_cb, allow_reconnect=False)
    try:
        lines = await asyncio.to_thread(server.lame_duck)
        assert any(ENTERING in line for line in lines)
        await asyncio.wait_for(told.wait(), timeout=30)  # the INFO with "ldm": true
        wait_until(lambda: refused(server.port), f"{server.name} to refuse new clients", timeout=10)
        await asyncio.to_thread(
            wait_until, lambda: not server.is_running, f"{server.name} to exit", timeout=60
        )
        await async_wait_until(
            lambda: asyncio.sleep(0, nc.is_closed), "the client closed by the server", timeout=30
        )
    finally:
        await nc.close()
    with pytest.raises(LameDuckError, match="cannot enter lame-duck mode: it is not running"):
        server.lame_duck()
    server.restart()  # back, on the same port
    nc = await server.connect()
    await nc.close()


@pytest.mark.nats_cluster(size=3, **QUICK)
@pytest.mark.asyncio
async def test_a_stream_leaders_node_in_lame_duck_mode_hands_the_leadership_over(
    nats_cluster: NatsCluster,
) -> None:
    nc = await nats_cluster.connect()
    try:
        await nc.jetstream().add_stream(name=STREAM, subjects=["rolling.>"], num_replicas=3)
        leader = await nats_cluster.stream_leader(STREAM)
        witness = (leader + 1) % nats_cluster.size
        await asyncio.to_thread(nats_cluster.nodes[leader].lame_duck, wait_exit=True)
        assert await nats_cluster.stream_leader(STREAM, via=witness, other_than=leader) != leader
        assert any(ENTERING in line for line in nats_cluster.nodes[leader].logs().splitlines())
    finally:
        await nc.close()


@pytest.mark.nats_cluster(size=3, **QUICK)
@pytest.mark.asyncio
async def test_a_rolling_restart_through_lame_duck_keeps_every_acknowledged_write(
    nats_cluster: NatsCluster,
) -> None:
    nc = await nats_cluster.connect()
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["rolling.>"], num_replicas=3)
        pids = [node.pid for node in nats_cluster.nodes]
        stop, acked = asyncio.Event(), []
        writer = asyncio.create_task(write_until(js, "rolling.w", stop, acked))
        await async_wait_until(lambda: asyncio.sleep(0, len(acked)), "the workload's first acks", timeout=30)
        before = len(acked)
        await nats_cluster.rolling_restart()
        await async_wait_until(
            lambda: asyncio.sleep(0, len(acked)),
            "acks after the restart",
            timeout=30,
            ok=lambda n: n > before + 10,
        )
        stop.set()
        tried = await writer
        for node, pid in zip(nats_cluster.nodes, pids, strict=True):
            assert node.is_running and node.pid != pid, f"{node.name} was restarted"
            assert node.logs().count(ENTERING) == 1, f"{node.name} went through lame-duck mode once"
        stored = await assert_no_acked_write_lost(nc, STREAM, acked)
        assert sum(stored.values()) <= tried
    finally:
        await nc.close()


@pytest.mark.nats_cluster(size=2)
@pytest.mark.asyncio
async def test_rolling_restart_names_a_bad_order(nats_cluster: NatsCluster) -> None:
    with pytest.raises(ValueError, match=r"order=\[0, 0\]\): name each node .* once \(0 to 1\)"):
        await nats_cluster.rolling_restart(order=[0, 0])
