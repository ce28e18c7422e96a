"""A seeded nemesis on a real 3-node cluster while a JetStream workload writes: the schedule is
the one its seed gives, each step really happens (the nodes it kills or puts in lame-duck mode
start again), everything is healed at the end, and every acknowledged write is there once."""

from __future__ import annotations

import asyncio

import pytest

from pytest_aegis import NatsCluster, assert_no_acked_write_lost
from pytest_aegis.natsd.nemesis import plan
from pytest_aegis.waiting import async_wait_until
from tests.nats_support import write_until

STREAM = "NEMESIS"
#: This seed's six steps use every fault: lame duck, pause, partition, kill and latency.
SEED = 5
QUICK = {"lame_duck_duration": 30, "lame_duck_grace_period": 1}


def starts(log: str) -> int:
    return log.count("Starting nats-server")


def test_the_seed_used_below_draws_every_fault() -> None:
    assert {step.fault for step in plan(SEED, 3)} == {"kill", "pause", "partition", "latency", "lame_duck"}


@pytest.mark.nats_cluster(size=3, **QUICK)
@pytest.mark.asyncio
async def test_a_seeded_nemesis_runs_its_schedule_heals_and_loses_no_acknowledged_write(
    nats_cluster: NatsCluster,
) -> None:
    nc = await nats_cluster.connect()
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["nemesis.>"], num_replicas=3)
        stop, acked = asyncio.Event(), []
        writer = asyncio.create_task(write_until(js, "nemesis.w", stop, acked))
        async with nats_cluster.nemesis(seed=SEED, hold=1.0, gap=0.5, timeout=60) as nemesis:
            await nemesis.wait()
        await async_wait_until(
            lambda: asyncio.sleep(0, len(acked)), "acks after the nemesis", timeout=30, ok=lambda n: n > 0
        )
        stop.set()
        await writer
        assert nemesis.done == nemesis.planned == plan(SEED, 3, hold=1.0, gap=0.5)
        assert nemesis.history[0].endswith(f"seed={SEED}: 6 step(s) (replay with the same seed)")
        for index, node in enumerate(nats_cluster.nodes):
            restarts = sum(
                1 for step in nemesis.planned if step.node == index and step.fault in ("kill", "lame_duck")
            )
            assert node.is_running and not node.is_paused
            assert starts(node.logs()) == 1 + restarts, (
                f"{node.name}: started again after each kill and lame duck"
            )
        await assert_no_acked_write_lost(nc, STREAM, acked)
    finally:
        await nc.close()


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_leaving_the_block_early_stops_the_schedule_and_heals_everything(
    nats_cluster: NatsCluster,
) -> None:
    async with nats_cluster.nemesis(seed=1, faults=["pause"], steps=50, hold=60, gap=0) as nemesis:
        await async_wait_until(
            lambda: asyncio.sleep(0, [node.is_paused for node in nats_cluster.nodes]),
            "the first step to pause a node",
            timeout=30,
            ok=any,
        )
    assert nemesis.done == []
    assert "stopped after 0 of 50 step(s)" in nemesis.history[-2]
    assert all(node.is_running and not node.is_paused for node in nats_cluster.nodes)
    await nats_cluster.wait_until_healthy()


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_store_step_damages_a_stopped_nodes_blocks_and_starts_it_again(
    nats_cluster: NatsCluster,
) -> None:
    nc = await nats_cluster.connect()
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["nemesis.>"], num_replicas=3)
        for i in range(100):
            await js.publish("nemesis.w", b"%d" % i)
        with pytest.raises(ValueError, match=r"the store fault needs streams=\[\.\.\.\] to damage"):
            nats_cluster.nemesis(seed=3, faults=["store"])
        with pytest.raises(ValueError, match=r"the power fault needs a cluster started with power_loss=True"):
            nats_cluster.nemesis(seed=3, faults=["power"])
        async with nats_cluster.nemesis(
            seed=3, faults=["store"], streams=[STREAM], steps=2, hold=0.5, gap=0
        ) as nem:
            await nem.wait()
        assert nem.done == nem.planned and all(step.damage for step in nem.planned)
        for step in nem.planned:
            said = f"step {step.number}: {nats_cluster.nodes[step.node].name}: {step.damage} of blocks"
            assert any(said in line for line in nem.history), nem.history
        for index, node in enumerate(nats_cluster.nodes):
            assert starts(node.logs()) == 1 + sum(1 for step in nem.planned if step.node == index)
    finally:
        await nc.close()
