"""JetStream isolated per test on the session's shared servers (issue 14, item 3): what a test made
(streams, consumers, KV buckets) is gone for the next test; what existed before it (a module
fixture's stream, its consumer and its messages) stays; ``nats_keep_jetstream`` keeps it."""

from __future__ import annotations

from typing import Any

import pytest
from support import run_inner

from pytest_aegis.natsd.jetstream import read_state

INNER = """
import asyncio

import pytest

def streams_and_consumers(server):
    async def read():
        nc = await server.connect()
        try:
            js = nc.jetstream()
            found = {}
            for info in await js.streams_info():
                consumers = {c.name for c in await js.consumers_info(info.config.name)}
                found[info.config.name] = (info.state.messages, consumers)
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


@pytest.fixture(scope="module")
def plain_stream(nats_server):
    async def make():
        nc = await nats_server.connect()
        try:
            js = nc.jetstream()
            await js.add_stream(name="BEFORE", subjects=["before.>"])
            await js.subscribe("before.x", durable="kept")
            for n in range(3):
                await js.publish("before.x", str(n).encode())
        finally:
            await nc.close()

    asyncio.run(make())
    return nats_server


@pytest.mark.asyncio
async def test_1_makes_a_stream_a_consumer_and_a_bucket(plain_stream, nats_client):
    js = nats_client.jetstream()
    await js.add_stream(name="LEAK", subjects=["leak.>"])
    for n in range(303):
        await js.publish("leak.x", str(n).encode())
    for subject, durable in (("leak.x", "leaky"), ("before.x", "extra")):  # extra: on a stream from before
        sub = await js.subscribe(subject, durable=durable)
        await sub.unsubscribe()  # the durable consumer stays; the client has nothing left to drain
    kv = await js.create_key_value(bucket="leakkv")
    await kv.put("k", b"v")


def test_2_sees_only_what_existed_before(plain_stream):
    assert streams_and_consumers(plain_stream) == {"BEFORE": (3, {"kept"})}


@pytest.mark.asyncio
@pytest.mark.nats_keep_jetstream
async def test_3_keeps_what_it_makes_when_marked(plain_stream, nats_client):
    await nats_client.jetstream().add_stream(name="INSPECT", subjects=["inspect.>"])


def test_4_sees_what_was_kept(plain_stream):
    assert set(streams_and_consumers(plain_stream)) == {"BEFORE", "INSPECT"}


@pytest.mark.asyncio
@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_5_makes_a_stream_on_a_secured_shared_server(nats_client):
    await nats_client.jetstream().add_stream(name="SECURE_LEAK", subjects=["secure.>"])


@pytest.mark.nats_secure(auth="userpass", tls=True)
def test_6_sees_none_there(nats_secure):
    assert streams_and_consumers(nats_secure) == {}
"""


def test_what_a_test_makes_on_a_shared_server_is_gone_for_the_next(inner: Any) -> None:
    inner.makepyfile(test_order=INNER)
    result = run_inner(inner, "-p", "no:randomly", "-v", "-W", "error")
    result.assert_outcomes(passed=6)


def test_the_state_is_read_again_after_the_server_restarts_and_not_while_it_is_down(
    nats_server_factory: Any,
) -> None:
    server = nats_server_factory()
    url = str(server.monitor_url)
    assert read_state(url).streams == {}  # the kept connection is made
    server.restart()  # and closed by the server: read again on a new one
    assert read_state(url).streams == {}
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        read_state(url)
