"""Membership on a real cluster: ``add_node()`` starts a node that joins the running cluster,
secured like the others (TLS with the session CA, route credentials), takes a replica of a new
stream and can lead it; the cluster's URLs name it from then on."""

from __future__ import annotations

import pytest

from pytest_aegis import NatsCluster, assert_connection_rejected

STREAM = "GROWN"


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
