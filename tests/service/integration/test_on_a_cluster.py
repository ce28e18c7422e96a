"""The reference service on a 3-node NATS cluster (TLS + user/password, routes secured), its
``AUDIT`` stream and registry buckets at R3: the leader of its stream killed mid-burst."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from audit_support import FAST_AUDIT, consumer_info, count_rows, event, publish

from pytest_aegis import NatsCluster, assert_instance_registered, assert_no_event_lost
from pytest_aegis.waiting import async_wait_until

R3 = {"AEGIS_JETSTREAM_REPLICAS": "3"}


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_the_audit_streams_leader_killed_mid_burst_loses_and_duplicates_nothing(
    nats_cluster: NatsCluster, audit_db: Any, fast_app: Any
) -> None:
    app = fast_app(env={"AEGIS_DATABASE_URL": audit_db.dsn, **FAST_AUDIT, **R3})
    nc = await nats_cluster.connect()
    try:
        js = nc.jetstream()
        info = await js.stream_info("AUDIT")
        assert info.config.num_replicas == 3
        # Mid-burst by construction: with audit_events locked the consumer fetches but cannot
        # store, so the whole burst is in flight when the leader's node dies.
        async with await psycopg.AsyncConnection.connect(audit_db.dsn) as holder:
            await holder.execute("LOCK TABLE audit_events IN EXCLUSIVE MODE")
            ids = await publish(js, [event() for _ in range(5000)])
            await async_wait_until(
                lambda: consumer_info(js),
                "the consumer to hold fetched, unstored events",
                timeout=15,
                ok=lambda consumer: consumer.num_ack_pending > 0,
            )
            leader = await nats_cluster.stream_leader("AUDIT")
            nats_cluster.kill(leader)
            assert await asyncio.to_thread(count_rows, audit_db.dsn) == 0
            await holder.rollback()
        await nats_cluster.wait_until_healthy()
        assert await nats_cluster.stream_leader("AUDIT") != leader
        await assert_no_event_lost(audit_db.dsn, ids, within=90, strict=True)
        # Its registration lives in an R3 bucket: it survived the node.
        await assert_instance_registered(nc, app.service_name, app.instance_id, within=10)
    finally:
        await nc.close()
