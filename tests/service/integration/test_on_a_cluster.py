"""The reference service on a 3-node NATS cluster (TLS + user/password, routes secured), its
``AUDIT`` stream and registry buckets at R3: the leader of its stream killed mid-burst, a
partition isolating the registry bucket's leader, and a rolling restart through lame-duck mode
during a burst."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from audit_support import FAST_AUDIT, consumer_info, count_rows, event, publish

from pytest_aegis import NatsCluster, assert_health_check, assert_instance_registered, assert_no_event_lost
from pytest_aegis.assertions.service import INSTANCES_BUCKET
from pytest_aegis.natsd.monitor import monitor_get
from pytest_aegis.waiting import async_wait_until
from tests.nats_support import UNACKED, connected_node

R3 = {"AEGIS_JETSTREAM_REPLICAS": "3"}
#: A registration TTL longer than the elections after a node dies: the entry has to survive them.
LONG_TTL = {"AEGIS_REGISTRATION_TTL": "30"}
STREAM = f"KV_{INSTANCES_BUCKET}"


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_the_audit_streams_leader_killed_mid_burst_loses_and_duplicates_nothing(
    nats_cluster: NatsCluster, audit_db: Any, fast_app: Any
) -> None:
    app = fast_app(env={"AEGIS_DATABASE_URL": audit_db.dsn, **FAST_AUDIT, **R3, **LONG_TTL})
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


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_registry_read_sent_while_the_bucket_has_no_leader_is_sent_again(
    nats_cluster: NatsCluster, fast_app: Any
) -> None:
    app = fast_app(env={**R3, **LONG_TTL})  # the entry is there all along, unreadable for a while
    leader = await nats_cluster.stream_leader(STREAM)
    reader = (leader + 1) % len(nats_cluster.nodes)
    nc = await nats_cluster.nodes[reader].connect()
    try:
        # The condition, made: the bucket's leader gone and no other elected yet when the first
        # read is sent. That request is never answered; the reads after it are, once one is.
        nats_cluster.kill(leader)
        await assert_instance_registered(nc, app.service_name, app.instance_id, within=10)
    finally:
        await nc.close()


def routes_of(node: Any) -> int:
    return int(monitor_get(str(node.monitor_url), "/routez")["num_routes"])


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_partition_isolating_the_registry_leaders_node_leaves_the_service_healthy_and_registered(
    nats_cluster: NatsCluster, fast_app: Any
) -> None:
    # A TTL longer than a leader election: while the bucket has no leader, nothing is written.
    app = fast_app(env={**R3, **LONG_TTL})
    home = connected_node(nats_cluster, app.service_name)
    # The condition, made: the bucket's leader on a node the service is not connected to, so the
    # service's side keeps a majority and has to elect a new leader.
    isolated = await nats_cluster.stream_leader(STREAM)
    if isolated == home:
        isolated = await nats_cluster.step_down(STREAM)
    nc = await nats_cluster.nodes[home].connect()
    try:
        nats_cluster.partition([isolated])
        await async_wait_until(
            lambda: asyncio.to_thread(routes_of, nats_cluster.nodes[isolated]),
            "the isolated node to lose its routes",
            timeout=10,
            ok=lambda routes: routes == 0,
        )
        # The majority elects another leader (asked through the service's node, on its side).
        await nats_cluster.stream_leader(STREAM, timeout=30, via=home, other_than=isolated)
        # Heartbeats land in the R3 bucket again (a quorum of 2 on the service's side).
        await async_wait_until(
            lambda: assert_health_check(nc, service=app.service_name, within=1),
            "the service to report healthy again",
            timeout=30,
            transient=(AssertionError,),
        )
        await assert_instance_registered(nc, app.service_name, app.instance_id, within=10)
        nats_cluster.heal()
        await nats_cluster.wait_until_healthy()
        await assert_instance_registered(nc, app.service_name, app.instance_id, within=10)
    finally:
        await nc.close()


@pytest.mark.nats_cluster(size=3, lame_duck_duration=30, lame_duck_grace_period=1)
@pytest.mark.asyncio
async def test_a_rolling_restart_through_lame_duck_keeps_the_service_healthy_and_every_event_once(
    nats_cluster: NatsCluster, audit_db: Any, fast_app: Any
) -> None:
    app = fast_app(env={"AEGIS_DATABASE_URL": audit_db.dsn, **FAST_AUDIT, **R3, **LONG_TTL})
    nc = await nats_cluster.connect()
    try:
        js = nc.jetstream()
        acked: list[str] = []
        checks: list[dict[str, Any]] = []
        restart = asyncio.create_task(nats_cluster.rolling_restart())

        async def burst() -> None:  # events published all through the restart
            while not restart.done():
                event_id, body = event()
                try:
                    await js.publish(
                        "audit.test.happened", body, timeout=2, headers={"Nats-Msg-Id": event_id}
                    )
                except UNACKED:
                    continue  # not acknowledged: the service may or may not see it
                acked.append(event_id)

        async def health() -> None:  # and health checked all through it
            while not restart.done():
                # While the service's own connection moves to another node (~200 ms), its health
                # subject has no responder: each check may take a few tries, none may fail for good.
                checks.append(
                    await async_wait_until(
                        lambda: assert_health_check(nc, service=app.service_name, within=1),
                        "the service to answer its health check healthy",
                        timeout=15,
                        transient=(AssertionError,),
                    )
                )

        await asyncio.gather(restart, burst(), health())
        assert len(checks) > 3 and len(acked) > 100
        await assert_health_check(nc, service=app.service_name, within=10)
        await assert_no_event_lost(audit_db.dsn, acked, within=90)
    finally:
        await nc.close()
