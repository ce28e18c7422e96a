"""BatchPublisher (the outbox relay's publish) against a real JetStream server."""

from __future__ import annotations

import pytest
import pytest_asyncio
from nats.js.api import StreamConfig

from aegis_service.adapters.nats.publish import BatchPublisher, PublishFailed

pytestmark = pytest.mark.asyncio

STREAM = "PUBTEST"


@pytest_asyncio.fixture
async def server(nats_server_factory):
    return nats_server_factory(jetstream=True)


@pytest_asyncio.fixture
async def client(server):
    nc = await server.connect()
    await nc.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["pub.>"], max_msg_size=1024))
    try:
        yield nc
    finally:
        await nc.close()


@pytest_asyncio.fixture
async def publisher(client):
    publisher = BatchPublisher(client, max_pending=50)
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()


def batch(count: int, *, start: int = 0, subject: str = "pub.x") -> list[tuple[str, bytes, dict[str, str]]]:
    return [(subject, b"%d" % n, {"Nats-Msg-Id": f"id-{n}"}) for n in range(start, start + count)]


async def stored(client) -> list[bytes]:
    info = await client.jetstream().stream_info(STREAM)
    return [(await client.jetstream().get_msg(STREAM, seq)).data for seq in range(1, info.state.messages + 1)]


async def test_every_message_is_stored_in_order_before_publish_returns(client, publisher):
    await publisher.publish(batch(300), timeout=10)  # more than max_pending: the window turns over
    assert await stored(client) == [b"%d" % n for n in range(300)]


async def test_a_repeated_msg_id_is_acked_and_stored_once(client, publisher):
    await publisher.publish(batch(5), timeout=10)
    await publisher.publish(batch(5), timeout=10)  # the relay's re-publish after a crash
    assert len(await stored(client)) == 5


async def test_a_subject_no_stream_captures_fails_naming_the_503(publisher):
    with pytest.raises(PublishFailed, match=r"3 of 3 publishes rejected: 503 no stream captures the subject"):
        await publisher.publish(batch(3, subject="nowhere.x"), timeout=10)


async def test_a_message_the_stream_rejects_fails_with_the_streams_reason(client, publisher):
    messages = [*batch(2), ("pub.x", b"x" * 2048, {"Nats-Msg-Id": "too-big"})]
    with pytest.raises(PublishFailed, match=r"1 of 3 publishes rejected: .*(?i:maximum)"):
        await publisher.publish(messages, timeout=10)
    assert len(await stored(client)) == 2


async def test_unacknowledged_publishes_time_out_and_late_acks_do_not_count_for_the_next_batch(
    server, client, publisher
):
    server.kill()  # kill -9: the client buffers the publishes while it reconnects
    with pytest.raises(PublishFailed, match=r"^4 of 4 publishes not acknowledged within 0.5s$"):
        await publisher.publish(batch(4), timeout=0.5)
    server.restart()  # same port and store: the buffered publishes go out, their acks come late
    await publisher.publish(batch(3, start=100), timeout=30)
    assert {b"100", b"101", b"102"} <= set(await stored(client))


async def test_publish_before_start_is_a_usage_error(client):
    with pytest.raises(RuntimeError, match=r"start\(\) was not called"):
        await BatchPublisher(client).publish(batch(1), timeout=1)
