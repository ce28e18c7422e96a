"""nats_cluster: a fresh, healthy, secured cluster per test (routes secured like the clients'
side), node faults, leaders, and the fixtures that follow it (nats_client, aegis_app)."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
from datetime import datetime
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from support import gone, kill_9_hanging_session, run_inner, session_env

from pytest_aegis import (
    AppProcess,
    NatsCluster,
    assert_connection_rejected,
    assert_health_check,
    assert_instance_registered,
)
from pytest_aegis.assertions.service import INSTANCES_BUCKET
from pytest_aegis.natsd.monitor import monitor_get
from pytest_aegis.natsd.startup import ROUTES_READY
from pytest_aegis.waiting import async_wait_until, wait_until
from tests.nats_support import connected_node

pytestmark = pytest.mark.aegis_backends(
    "local", "docker", reason="the external backend's server is what it is"
)


#: The timestamp nats-server puts on each log line (``2026/12/02 21:08:47.119516``).
LOG_TIME = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+")


def varz(node: Any) -> dict[str, Any]:
    return monitor_get(str(node.monitor_url), "/varz")


@pytest.mark.nats_cluster
@pytest.mark.asyncio
async def test_the_default_cluster_is_three_secured_nodes_with_secured_routes(
    nats_cluster: NatsCluster, nats_client: Client
) -> None:
    assert nats_cluster.size == 3 and len(set(nats_cluster.urls)) == 3
    assert all(url.startswith("tls://127.0.0.1:") for url in nats_cluster.urls)
    assert nats_client.connected_url is not None
    assert f"tls://127.0.0.1:{nats_client.connected_url.port}" in nats_cluster.urls
    for node in nats_cluster.nodes:
        routes = varz(node)["cluster"]
        assert routes["tls_required"] and routes["tls_verify"], routes
        assert varz(node)["routes"] >= 2
    for node in nats_cluster.nodes:  # every node enforces the client side's security too
        await assert_connection_rejected(node, reason="auth", password="wrong")


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_replicated_stream_survives_its_leaders_node_and_the_node_restarts_with_its_store(
    nats_cluster: NatsCluster, nats_client: Client
) -> None:
    js = nats_client.jetstream()
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"], num_replicas=3))
    for n in range(10):
        await js.publish("orders.new", str(n).encode())
    leader = await nats_cluster.stream_leader("ORDERS")
    port = nats_cluster.nodes[leader].port
    nats_cluster.kill(leader)
    healthy = await nats_cluster.wait_until_healthy()
    assert len(healthy) == 2
    assert await nats_cluster.stream_leader("ORDERS") != leader
    await js.publish("orders.new", b"10")  # the client failed over; the stream has a quorum
    nats_cluster.restart(leader)
    assert nats_cluster.nodes[leader].port == port
    await nats_cluster.wait_until_healthy()
    direct = await nats_cluster.nodes[leader].connect()
    try:  # its store came back and caught up (the replica catches up after it rejoins)
        await async_wait_until(
            lambda: direct.jetstream().stream_info("ORDERS"),
            "the restarted node's stream to hold all 11 messages",
            timeout=10,
            ok=lambda info: info.state.messages == 11,
        )
    finally:
        await direct.close()


@pytest.mark.nats_cluster
@pytest.mark.asyncio
async def test_killing_the_meta_leader_elects_another(nats_cluster: NatsCluster) -> None:
    leader = await nats_cluster.meta_leader()
    nats_cluster.kill(leader)
    await nats_cluster.wait_until_healthy()
    assert await nats_cluster.meta_leader() not in (leader,)


@pytest.mark.asyncio
async def test_the_factory_makes_clusters_of_any_spec(nats_cluster_factory: Any) -> None:
    cluster: NatsCluster = nats_cluster_factory(size=2, auth="token", tls=False)
    assert cluster.size == 2 and all(url.startswith("nats://") for url in cluster.urls)
    nc = await cluster.connect()
    try:
        assert nc.is_connected
    finally:
        await nc.close()
    await assert_connection_rejected(cluster.nodes[1], reason="auth", token="wrong")


@pytest.mark.nats_cluster
@pytest.mark.asyncio
async def test_the_service_is_wired_to_every_node_and_carries_on_when_its_node_dies(
    nats_cluster: NatsCluster, aegis_app_factory: Any, nats_client: Client
) -> None:
    # Its KV buckets at R3, so that they outlive any one node.
    aegis_app: AppProcess = aegis_app_factory(env={"AEGIS_JETSTREAM_REPLICAS": "3"})
    assert aegis_app.env["AEGIS_NATS_URL"] == ",".join(nats_cluster.urls)
    await assert_health_check(nats_client, service=aegis_app.service_name, within=5)
    node = connected_node(nats_cluster, aegis_app.service_name)
    # The condition, made: its registry bucket led from another node, so what is tested is the
    # service's failover, not a leader election (about 7 s here, then the service's backed-off
    # heartbeat retry, up to its 10 s interval: over this test's 15 s under load).
    if await nats_cluster.stream_leader(f"KV_{INSTANCES_BUCKET}") == node:
        await nats_cluster.step_down(f"KV_{INSTANCES_BUCKET}")
    nats_cluster.kill(node)
    # One health request answers for one moment: ask until it is answered through another node
    # (the service and this client reconnect; the service's interest crosses the routes again).
    await async_wait_until(
        lambda: assert_health_check(nats_client, service=aegis_app.service_name, within=1),
        "the service healthy again through another node",
        timeout=15,
        transient=(AssertionError,),
    )
    assert connected_node(nats_cluster, aegis_app.service_name) != node
    await assert_instance_registered(nats_client, aegis_app.service_name, aegis_app.instance_id, within=5)


def routed_to(cluster: NatsCluster) -> dict[int, set[str]]:
    """The node names each node routes to now."""
    return {
        index: {route["remote_name"] for route in monitor_get(str(node.monitor_url), "/routez")["routes"]}
        for index, node in enumerate(cluster.nodes)
    }


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_partition_cuts_the_routes_between_groups_and_not_the_clients(
    nats_cluster: NatsCluster,
) -> None:
    names = [node.name for node in nats_cluster.nodes]
    nats_cluster.partition([0])  # node 0 on one side, 1 and 2 on the other
    await async_wait_until(
        lambda: asyncio.to_thread(routed_to, nats_cluster),
        "node 0 cut off, 1 and 2 still routed",
        timeout=10,
        ok=lambda seen: seen == {0: set(), 1: {names[2]}, 2: {names[1]}},
    )
    isolated, majority = await nats_cluster.nodes[0].connect(), await nats_cluster.nodes[1].connect()
    try:  # clients on both sides are still connected, but messages no longer cross
        sub = await majority.subscribe("across")
        await majority.flush()
        await isolated.publish("across", b"lost")
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.5)
        nats_cluster.heal()
        await nats_cluster.wait_until_healthy()

        async def crossed() -> bytes:
            await isolated.publish("across", b"back")  # until the interest has crossed again
            return bytes((await sub.next_msg(timeout=0.2)).data)

        assert await async_wait_until(crossed, "a message across the healed routes", timeout=10,
                                      transient=(nats.errors.TimeoutError,)) == b"back"  # fmt: skip
    finally:
        await isolated.close()
        await majority.close()


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_healthy_again_after_a_partition_means_a_stream_can_be_placed_on_every_node(
    nats_cluster: NatsCluster,
) -> None:
    """The meta leader places replicas only on nodes it has had a statistics update from, and a
    node whose routes just came back is routed, current and healthy before its next update (an R3
    stream made then was refused, "no suitable peers for placement, peer offline", in 3 of 4
    tries): ``wait_until_healthy`` waits until placement works."""
    leader = await nats_cluster.meta_leader()
    other = (leader + 1) % nats_cluster.size
    nats_cluster.partition([other])
    await async_wait_until(
        lambda: asyncio.to_thread(routed_to, nats_cluster),
        f"node {other} cut off",
        timeout=10,
        ok=lambda seen: seen[other] == set(),
    )
    nats_cluster.heal()
    await nats_cluster.wait_until_healthy()
    nc = await nats_cluster.nodes[leader].connect()
    try:
        made = StreamConfig(name="EVERYWHERE", subjects=["everywhere.>"], num_replicas=3)
        info = await nc.jetstream(timeout=5).add_stream(made)
    finally:
        await nc.close()
    assert info.cluster is not None and info.config.num_replicas == 3


@pytest.mark.asyncio
async def test_a_node_whose_route_port_was_taken_is_started_again_on_another(
    nats_cluster_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node logs "Server is ready" before it binds its route port: one whose route port another
    process took meanwhile dies after that line (it once left a cluster of two live nodes, healthy,
    refusing R3 streams).  A cluster node is up only once it listens for routes."""
    import pytest_aegis.natsd.cluster as cluster_module

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        picks = iter([None, taken])  # node 2's route port (index 1): one that is taken
        lease_port = cluster_module.lease_port
        monkeypatch.setattr(cluster_module, "lease_port", lambda: next(picks, None) or lease_port())
        cluster = nats_cluster_factory(size=3)
        assert [node.is_running for node in cluster.nodes] == [True, True, True]
        assert taken not in cluster.layout.route_ports
        nc = await cluster.connect()
        try:
            made = StreamConfig(name="ON_THREE", subjects=["on_three.>"], num_replicas=3)
            assert (await nc.jetstream(timeout=5).add_stream(made)).config.num_replicas == 3
        finally:
            await nc.close()


def logged_at(node: Any, text: str) -> datetime:
    """When ``node`` first logged a line containing ``text`` (nats-server's own timestamp)."""
    for line in node.logs().splitlines():
        if text in line and (stamp := LOG_TIME.search(line)):
            return datetime.strptime(stamp.group(0), "%Y/%m/%d %H:%M:%S.%f")
    raise AssertionError(f"{node.name} never logged {text!r}; its last lines:\n{node.logs()[-2000:]}")


@pytest.mark.nats_cluster
def test_each_node_starts_once_the_one_before_it_listens_for_routes(nats_cluster: NatsCluster) -> None:
    """Started side by side, two nodes can dial each other at the same moment, and nats-server may
    then drop both connections: that pair has no route until a retry a second later (cluster starts
    of 1.2 to 6 s instead of 0.3 to 0.7 s, in about one start in ten).  Started one after another,
    a node's routes to the nodes before it connect at once, and no pair dials both ways at once."""
    for before, after in itertools.pairwise(nats_cluster.nodes):
        listening, starting = logged_at(before, ROUTES_READY), logged_at(after, "Starting nats-server")
        assert listening <= starting, f"{after.name} started before {before.name} listened for routes"


def test_a_bad_cluster_marker_is_one_usage_error(inner: Any) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.nats_cluster(size=1)
        def test_one(nats_cluster):
            pass

        @pytest.mark.nats_cluster(size=3, jetstream=False)
        def test_two(nats_cluster):
            pass
        """
    )
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    for problem in (  # one usage error, both problems (in collection order, random here)
        "*test_one: @pytest.mark.nats_cluster: size=1: a cluster has 2 to 9 nodes*",
        "*test_two: @pytest.mark.nats_cluster: a cluster needs JetStream*",
    ):
        result.stderr.fnmatch_lines([problem])


HOLDER = """
import json, os, pathlib, threading

import pytest


@pytest.mark.nats_cluster(size=3)
def test_holds(nats_cluster, aegis_proxy):
    proxy = aegis_proxy(nats_cluster.nodes[0])
    info = {"pids": [node.pid for node in nats_cluster.nodes], "port": proxy.port}
    pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps(info))
    threading.Event().wait()  # until killed
"""


@pytest.mark.aegis_backends("local", reason="the nodes' pids are this machine's processes")
def test_kill_9_of_a_pytest_holding_a_cluster_and_a_proxy_leaves_no_server_and_no_port(tmp_path: Any) -> None:
    (tmp_path / "test_hold.py").write_text(HOLDER)
    env = session_env(tmp_path / "state", tmp_path / "pids.json")
    info = kill_9_hanging_session("test_hold.py", env, tmp_path, tmp_path / "pids.json")
    assert len(info["pids"]) == 3 and all(info["pids"])
    wait_until(
        lambda: all(gone(pid) for pid in info["pids"]), "the cluster's nodes to die with pytest", timeout=10
    )
    with socket.socket() as probe:
        probe.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", info["port"]))
