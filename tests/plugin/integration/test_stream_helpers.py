"""What users wrote by hand, now helpers, on real servers: a stream's message count, a consumer
drained (and what it says while it is not, or is not there), the node a cluster client is on."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from pytest_aegis import NatsCluster, NatsServer, assert_consumer_drained, stream_message_count

STREAM, DURABLE = "HELPED", "worker"

pytestmark = pytest.mark.asyncio


async def test_a_streams_count_and_a_consumer_drained_or_not_with_what_it_saw(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await js.add_stream(name=STREAM, subjects=["helped.>"])
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT))
    for i in range(3):
        await js.publish("helped.x", str(i).encode())
    assert await stream_message_count(nats_client, STREAM) == 3
    with pytest.raises(
        AssertionError, match=r"within 0\.2s; seen: ack floor at stream sequence 0, 3 not yet"
    ):
        await assert_consumer_drained(nats_client, STREAM, DURABLE, within=0.2)
    sub = await js.pull_subscribe_bind(DURABLE, STREAM)
    messages = await sub.fetch(3, timeout=5)
    with pytest.raises(AssertionError, match=r"3 awaiting an ack"):
        await assert_consumer_drained(nats_client, STREAM, DURABLE, within=0.2)
    for msg in messages:
        await msg.ack_sync()
    info = await assert_consumer_drained(nats_client, STREAM, DURABLE, at_least=3, within=5)
    assert info.num_redelivered == 0
    with pytest.raises(AssertionError, match=r"an ack floor of at least 4 .*ack floor at stream sequence 3"):
        await assert_consumer_drained(nats_client, STREAM, DURABLE, at_least=4, within=0.2)


async def test_a_missing_stream_or_consumer_fails_naming_what_is_there(nats_client: Client) -> None:
    js = nats_client.jetstream()
    await js.add_stream(name=STREAM, subjects=["helped.>"])
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=DURABLE))
    with pytest.raises(
        AssertionError, match=r"consumer 'other' of stream 'HELPED': not there \(its consumers: 'worker'\)"
    ):
        await assert_consumer_drained(nats_client, STREAM, "other", within=1)
    with pytest.raises(AssertionError, match=r"not there \(its consumers: none: there is no stream 'NOPE'\)"):
        await assert_consumer_drained(nats_client, "NOPE", DURABLE, within=1)
    with pytest.raises(AssertionError, match=r"there is no stream 'NOPE'"):
        await stream_message_count(nats_client, "NOPE", within=1)


@pytest.mark.nats_cluster(size=3)
async def test_node_of_names_the_node_a_client_is_on(nats_cluster: NatsCluster, aegis_proxy: Any) -> None:
    node: NatsServer = nats_cluster.nodes[1]
    nc = await node.connect()
    proxied = await aegis_proxy(node).connect()
    try:
        assert nats_cluster.node_of(nc) == 1
        with pytest.raises(LookupError, match=r"no node of cluster .*through a proxy\?"):
            nats_cluster.node_of(proxied)
    finally:
        await nc.close()
        await proxied.close()
    with pytest.raises(LookupError, match=r"the client is closed"):
        nats_cluster.node_of(nc)
