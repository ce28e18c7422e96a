"""Membership on a real cluster: ``add_node()`` starts a node that joins the running cluster,
secured like the others (TLS with the session CA, route credentials), takes a replica of a new
stream and can lead it; the cluster's URLs name it from then on.  ``remove_peer(i)`` is
JetStream's own removal of a node: the meta group drops it and its replicas move to a spare node.
The system account's user that removal needs is there in every auth mode that can have one."""

from __future__ import annotations

from collections.abc import Callable

import nats.errors
import pytest
from nats.js.api import StreamInfo

from pytest_aegis import NatsCluster, NatsServer, PeerRemovalError, assert_connection_rejected
from pytest_aegis.natsd.auth import SYSTEM_USER
from pytest_aegis.natsd.health import agreed_leader
from pytest_aegis.waiting import async_wait_until

STREAM = "GROWN"
MOVED = "MOVED"
WRITES = 20


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_node_added_to_a_running_cluster_joins_it_secured_and_holds_a_replica(
    nats_cluster: NatsCluster,
) -> None:
    node = nats_cluster.add_node()
    assert nats_cluster.size == 4 and nats_cluster.nodes[-1] is node
    assert node.url in nats_cluster.connect_kwargs()["servers"]
    seen = await nats_cluster.wait_until_healthy()  # routes to all, in the meta group, placeable
    assert {health.name for health in seen} == {n.name for n in nats_cluster.nodes}
    await assert_connection_rejected(node, reason="tls", tls=None)  # it is secured like the others
    nc = await node.connect()
    try:
        info = await nc.jetstream().add_stream(name=STREAM, subjects=["grown.>"], num_replicas=4)
        assert info.cluster is not None
        holders = {info.cluster.leader, *(replica.name for replica in info.cluster.replicas or [])}
        assert node.name in holders, f"the new node holds a replica of an R4 stream: {holders}"
        assert await nats_cluster.step_down(STREAM, to=3) == 3, "and can lead it"
    finally:
        await nc.close()
    node.restart()  # a restarted new node routes to the others again
    await nats_cluster.wait_until_healthy()


def holders(info: StreamInfo) -> list[str]:
    """The stream's leader first, then its replicas."""
    assert info.cluster is not None
    return [str(info.cluster.leader), *(replica.name for replica in info.cluster.replicas or [])]


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_removed_peer_leaves_the_meta_group_and_its_replica_moves_to_a_spare_node(
    nats_cluster: NatsCluster,
) -> None:
    nats_cluster.add_node()  # four nodes: an R3 stream leaves one spare
    await nats_cluster.wait_until_healthy()
    nc = await nats_cluster.connect()
    try:
        js = nc.jetstream()
        await js.add_stream(name=MOVED, subjects=["moved.>"], num_replicas=3)
        for i in range(WRITES):
            await js.publish("moved.w", str(i).encode())
        before = holders(await js.stream_info(MOVED))
        gone = next(i for i, node in enumerate(nats_cluster.nodes) if node.name in before[1:])
        name = nats_cluster.nodes[gone].name
        nats_cluster.stop(gone)  # as an operator removes a server that is gone for good
        await nats_cluster.remove_peer(gone)
        assert all(name not in health.meta_peers for health in await nats_cluster.wait_until_healthy())

        def moved(info: StreamInfo) -> bool:
            replicas = (info.cluster.replicas if info.cluster is not None else None) or []
            return name not in holders(info) and len(replicas) == 2 and all(r.current for r in replicas)

        info = await async_wait_until(
            lambda: js.stream_info(MOVED),
            f"stream {MOVED}'s replica on {name} to move to the spare node",
            timeout=30,
            ok=moved,
            interval=0.05,
        )
        (spare,) = set(holders(info)) - set(before)
        assert spare in {node.name for node in nats_cluster.nodes} - set(before)
        assert info.state.messages == WRITES, "every acknowledged write is still there"
        with pytest.raises(PeerRemovalError, match="not a member"):
            await nats_cluster.remove_peer(gone)  # JetStream's own refusal, passed on
        nats_cluster.restart(gone)  # a removed peer that comes back is not a member again
        seen = await nats_cluster.wait_until_healthy()
        assert name not in {health.name for health in seen}
        assert all(name not in health.meta_peers for health in seen)
    finally:
        await nc.close()


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_removing_the_meta_leaders_node_right_after_it_stops_waits_for_the_next_leader(
    nats_cluster: NatsCluster,
) -> None:
    leader = agreed_leader(await nats_cluster.wait_until_healthy())
    assert leader is not None
    gone = [node.name for node in nats_cluster.nodes].index(leader.name)
    nats_cluster.stop(gone)  # the one node that answers $JS.API.SERVER.REMOVE is gone, no election yet
    await nats_cluster.remove_peer(gone)
    seen = await nats_cluster.wait_until_healthy()
    assert all(leader.name not in health.meta_peers for health in seen), seen


@pytest.mark.parametrize("auth", ["userpass", "nkey", "jwt"])
@pytest.mark.asyncio
async def test_the_system_accounts_user_reaches_sys_and_the_default_user_does_not(
    nats_server_factory: Callable[..., NatsServer], auth: str
) -> None:
    server = nats_server_factory(auth=auth)
    system = await server.connect(as_user=SYSTEM_USER)
    default = await server.connect()
    try:
        reply = await system.request("$SYS.REQ.SERVER.PING", b"", timeout=5)
        assert b'"server"' in reply.data
        with pytest.raises(nats.errors.NoRespondersError):
            await default.request("$SYS.REQ.SERVER.PING", b"", timeout=5)
    finally:
        await system.close()
        await default.close()
