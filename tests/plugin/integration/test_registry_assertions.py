"""The registry assertions say what they saw when the bucket cannot be read, and an unreadable
bucket is never taken for an expired entry.  Each condition is made on real servers: a bucket
with no quorum (two of a cluster's three nodes killed), a server without JetStream, no bucket."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig

from pytest_aegis import NatsCluster, assert_instance_registered, assert_registration_expires
from pytest_aegis.assertions.service import INSTANCES_BUCKET, READ_TIMEOUT
from pytest_aegis.waiting import async_wait_until

STREAM = f"KV_{INSTANCES_BUCKET}"

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.aegis_backends("local", "docker", reason="nodes are killed"),
]


def _record_request_timeouts(nc: Client, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The ``timeout`` of every request ``nc`` sends from now on (JetStream's API requests, a
    bucket's reads, go through ``Client.request``)."""
    timeouts: list[float] = []
    request = nc.request

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs["timeout"])
        return await request(*args, **kwargs)

    monkeypatch.setattr(nc, "request", recorded)
    return timeouts


@pytest.mark.nats_cluster(size=3)
async def test_a_bucket_without_quorum_is_reported_as_unanswered_and_not_as_expired(
    nats_cluster: NatsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc = await nats_cluster.nodes[0].connect()
    try:
        kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=INSTANCES_BUCKET, replicas=3))
        await kv.put("svc.i1", b"{}")
        # The bucket led from a node about to die (a leader left alone still answers reads).
        if await nats_cluster.stream_leader(STREAM) == 0:
            await nats_cluster.step_down(STREAM)
        nats_cluster.kill(1)
        nats_cluster.kill(2)  # the bucket's stream keeps 1 replica of 3: no leader, no answer
        js = nc.jetstream(timeout=0.5)

        async def unanswered() -> bool:
            try:
                await js.stream_info(STREAM)
            except nats.errors.TimeoutError:
                return True
            return False  # node 0 has not noticed yet that it lost its quorum

        await async_wait_until(unanswered, "the bucket to stop answering", timeout=30)
        timeouts = _record_request_timeouts(nc, monkeypatch)
        unanswered = r"JetStream did not answer \(the bucket's stream without a leader\?\)"
        with pytest.raises(AssertionError, match=rf"within 1\.00s; seen: {unanswered}$"):
            await assert_instance_registered(nc, "svc", "i1", within=1)
        with pytest.raises(
            AssertionError,
            match=rf"^registration: expected 'svc\.i1' to expire from KV 'service-instances' within "
            rf"1\.00s, but the bucket could not be read \(last: {unanswered}\)$",
        ):
            await assert_registration_expires(nc, "svc", "i1", within=1)
        # Each read ends by the deadline, not nats-py's 5 s: every request of every read waited
        # READ_TIMEOUT (1 s) at most, the JetStream default of 5 s never.
        assert timeouts and max(timeouts) <= READ_TIMEOUT, timeouts
    finally:
        await nc.close()


async def test_a_server_without_jetstream_has_no_responders_and_no_bucket_is_missing(
    nats_server_factory: Any,
) -> None:
    bare = await nats_server_factory(auth="none", tls=False, jetstream=False).connect()
    try:
        with pytest.raises(AssertionError, match=r"seen: no responders \(JetStream not enabled"):
            await assert_instance_registered(bare, "svc", within=0.2)
    finally:
        await bare.close()
    nc = await nats_server_factory(auth="none", tls=False).connect()
    try:
        with pytest.raises(AssertionError, match=r"seen: bucket missing$"):
            await assert_instance_registered(nc, "svc", within=0.2)
        with pytest.raises(AssertionError, match=r"but there is no bucket 'service-instances'"):
            await assert_registration_expires(nc, "svc", "i1", within=0.2)  # it proves nothing
    finally:
        await nc.close()


async def test_a_service_registering_elsewhere_is_found_there_and_never_expires_by_default(
    nats_server_factory: Any,
) -> None:
    """A user's service with its own layout (KV ``fleet``, keys ``<service>/<instance>``): the
    helpers follow ``bucket=`` and ``key=``; with the defaults the expiry check fails, naming the
    bucket it did not find, instead of passing for a live instance."""
    nc = await nats_server_factory(auth="none", tls=False).connect()
    try:
        kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket="fleet"))
        entry = b'{"serviceName": "orders", "instanceId": "o-1", "version": "1", "status": "ACTIVE",'
        await kv.put("orders/o-1", entry + b' "lastHeartbeat": "2026-12-07T12:00:00+00:00"}')
        elsewhere = {"bucket": "fleet", "key": "{service}/{instance}"}
        found = await assert_instance_registered(nc, "orders", "o-1", within=5, **elsewhere)
        assert found.instance_id == "o-1"
        await assert_instance_registered(nc, "orders", within=5, **elsewhere)
        with pytest.raises(AssertionError, match=r"'orders/o-1' to expire from KV 'fleet'.*still there"):
            await assert_registration_expires(nc, "orders", "o-1", within=0.2, **elsewhere)
        with pytest.raises(
            AssertionError, match=r"no bucket 'service-instances'.*pass bucket=\.\.\. and key"
        ):
            await assert_registration_expires(nc, "orders", "o-1", within=0.2)
        with pytest.raises(AssertionError, match=r"expected instance 'o-1' of 'ord' in KV 'fleet'"):
            await assert_instance_registered(nc, "ord", "o-1", within=0.2, **elsewhere)
        await kv.delete("orders/o-1")
        await assert_registration_expires(nc, "orders", "o-1", within=5, **elsewhere)
        with pytest.raises(ValueError, match=r"needs \{instance\}"):
            await assert_registration_expires(nc, "orders", "o-1", within=0.2, key="{service}")
    finally:
        await nc.close()
