"""BatchPuller (the audit consumer's fetch) against a real JetStream server."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from aegis_service.adapters.nats.pull import BatchPuller, PullError
from pytest_aegis.waiting import async_wait_until

pytestmark = pytest.mark.asyncio

STREAM, CONSUMER = "PULLTEST", "puller"


@pytest_asyncio.fixture
async def js_client(nats_server_factory):
    server = nats_server_factory(jetstream=True)
    nc = await server.connect()
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["pull.>"]))
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT))
    try:
        yield nc
    finally:
        await nc.close()


@pytest_asyncio.fixture
async def puller(js_client):
    puller = BatchPuller(js_client, STREAM, CONSUMER)
    await puller.start()
    try:
        yield puller
    finally:
        await puller.stop()


async def publish(nc, bodies: list[bytes]) -> None:
    js = nc.jetstream()
    for body in bodies:
        await js.publish("pull.x", body)


async def until_lingering(puller: BatchPuller) -> None:
    """Until the fetch found the stream empty and waits for the first message."""

    async def probe() -> bool:
        return puller.lingering

    await async_wait_until(probe, "the fetch to wait for a message", timeout=5)


async def test_ready_messages_come_in_order_at_most_a_batch_at_a_time(js_client, puller):
    await publish(js_client, [b"%d" % n for n in range(25)])
    first = await puller.fetch(10, timeout=1)
    second = await puller.fetch(10, timeout=1)
    third = await puller.fetch(10, timeout=1)
    assert [m.data for m in first + second + third] == [b"%d" % n for n in range(25)]
    assert [len(first), len(second), len(third)] == [10, 10, 5]
    for msg in first + second + third:
        await msg.ack()
    # The server takes acks off a queue after reading them, so it may still count a few as pending.
    await async_wait_until(
        lambda: js_client.jetstream().consumer_info(STREAM, CONSUMER),
        "the server to count every message delivered and acked (num_pending, num_ack_pending == 0, 0)",
        timeout=5,
        ok=lambda info: (info.num_pending, info.num_ack_pending) == (0, 0),
    )


async def test_an_empty_stream_gives_an_empty_batch(puller):
    assert await puller.fetch(10, timeout=0.3) == []


async def test_a_waiting_fetch_returns_the_first_message_published_meanwhile(js_client, puller):
    fetching = asyncio.create_task(puller.fetch(10, timeout=5))
    await until_lingering(puller)
    await publish(js_client, [b"late"])
    got = await asyncio.wait_for(fetching, 5)
    assert [m.data for m in got] == [b"late"]


async def test_messages_arriving_after_a_fetch_returned_are_kept_for_the_next(js_client, puller):
    fetching = asyncio.create_task(puller.fetch(10, timeout=5))
    await until_lingering(puller)
    await publish(js_client, [b"a"])
    assert [m.data for m in await fetching] == [b"a"]
    await publish(js_client, [b"b", b"c"])  # delivered on the still-open request of the first fetch
    got: list[bytes] = []
    while len(got) < 2:
        got += [m.data for m in await puller.fetch(10, timeout=1)]
    assert got == [b"b", b"c"]


async def test_a_missing_consumer_is_an_error_naming_the_status(js_client):
    puller = BatchPuller(js_client, STREAM, "no-such-consumer")
    await puller.start()
    try:
        with pytest.raises(PullError, match="503") as info:
            await puller.fetch(10, timeout=1)
        assert info.value.status == "503"
    finally:
        await puller.stop()


async def until_waiting_on_the_server(nc) -> None:
    """Until the server has registered the lingering pull request.  ``lingering`` is set when the
    request is sent; the server queues it before the consumer takes it, and a consumer deleted in
    between drops it with no status at all."""

    async def probe() -> bool:
        info = await nc.jetstream().consumer_info(STREAM, CONSUMER)
        return (info.num_waiting or 0) >= 1

    await async_wait_until(probe, "the server to hold the waiting pull request", timeout=5)


async def test_a_consumer_deleted_during_a_fetch_is_an_error(js_client, puller):
    fetching = asyncio.create_task(puller.fetch(10, timeout=5))
    await until_lingering(puller)
    await until_waiting_on_the_server(js_client)
    await js_client.jetstream().delete_consumer(STREAM, CONSUMER)
    with pytest.raises(PullError, match=r"(?i)deleted") as info:
        # Longer than the fetch's own timeout: without the 409 the fetch returns [] and
        # pytest.raises reports DID NOT RAISE instead of a bare TimeoutError.
        await asyncio.wait_for(fetching, 10)
    assert info.value.status == "409"


async def test_fetch_before_start_is_a_usage_error(js_client):
    with pytest.raises(RuntimeError, match=r"start\(\) was not called"):
        await BatchPuller(js_client, STREAM, CONSUMER).fetch(1, timeout=0.1)
