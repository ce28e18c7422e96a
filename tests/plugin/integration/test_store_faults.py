"""Store faults on real servers: ``corrupt()`` damages a stopped server's JetStream store, file by
file, on either backend (a directory here, a stopped container's files through the engine); and
what a 3-node cluster makes of a replica whose blocks or snapshot were damaged.

What the damaged replica does differs between nats-server releases (the Jepsen analysis of 2.12.1
found acknowledged writes lost this way), so those outcomes are recorded per release: a release
not recorded here skips that one assertion, with the release in the reason. Whatever a replica
does, the rest of the cluster keeps every acknowledged write: that part holds on every release."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from nats.aio.client import Client

from pytest_aegis import NatsCluster, NatsServer, StoreDamage, assert_no_acked_write_lost, wait_until
from pytest_aegis.assertions.jetstream import stored_ids
from pytest_aegis.natsd.monitor import monitor_get
from pytest_aegis.natsd.store import store_paths

STREAM = "STORE"
WRITES = 200
SEED = 7


async def fill(nc: Client, replicas: int) -> list[str]:
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["store.>"], num_replicas=replicas)
    acked = []
    for i in range(WRITES):
        await js.publish("store.w", b"payload-%03d" % i, headers={"Nats-Msg-Id": f"w-{i}"})
        acked.append(f"w-{i}")
    return acked


def check_damage(before: dict[str, bytes], after: dict[str, int], read: Any, damage: StoreDamage) -> None:
    """The files named in ``damage`` were changed exactly as it says, and no other."""
    assert damage.files, "something was damaged"
    for hit in damage.files:
        original = before[hit.path]
        if damage.kind == "delete":
            assert hit.path not in after
        elif damage.kind == "truncate":
            assert after[hit.path] == len(original) // 2 and read(hit.path) == original[: len(original) // 2]
        else:
            changed = read(hit.path)
            diff = [i for i, (a, b) in enumerate(zip(original, changed, strict=True)) if a != b]
            assert hit.offset is not None and hit.bit is not None
            assert diff == [hit.offset] and original[hit.offset] ^ changed[hit.offset] == 1 << hit.bit
    untouched = set(before) - {hit.path for hit in damage.files}
    assert all(read(path) == before[path] for path in untouched)


@pytest.mark.parametrize("kind", ["bitflip", "truncate", "delete"])
@pytest.mark.asyncio
async def test_corrupt_damages_exactly_the_blocks_it_reports(nats_server_factory: Any, kind: str) -> None:
    server = nats_server_factory(auth="none", tls=False, sync_interval="always")  # every write on disk
    nc = await server.connect()
    try:
        await fill(nc, replicas=1)
    finally:
        await nc.close()
    with pytest.raises(
        RuntimeError, match="is running: stop\\(\\) or kill\\(\\) it before its store is touched"
    ):
        server.corrupt(STREAM, kind=kind)
    server.stop()
    store = server.runtime.stopped_store()
    blocks = f"jetstream/$G/streams/{STREAM}/msgs"
    before = {path: store.read(path) for path in store.list_files(f"jetstream/$G/streams/{STREAM}")}
    damage = server.corrupt(STREAM, kind=kind, seed=SEED)
    assert {hit.path.rpartition("/")[0] for hit in damage.files} == {blocks}
    check_damage(before, store.list_files(f"jetstream/$G/streams/{STREAM}"), store.read, damage)
    assert str(damage).startswith(f"{server.name}: {kind} of blocks of stream {STREAM} (seed {SEED})")
    server.restart()  # a single server has no replica to repair from: what the damage took is gone
    nc = await server.connect()
    try:
        stored = await stored_ids(nc, STREAM)
        assert sum(stored.values()) < WRITES if kind != "bitflip" else sum(stored.values()) <= WRITES
    finally:
        await nc.close()


def test_bad_corrupt_arguments_name_what_is_wrong(nats_server_factory: Any) -> None:
    server = nats_server_factory(auth="none", tls=False)
    server.stop()
    with pytest.raises(
        ValueError, match="corrupt\\(kind='melt'\\): valid kinds are bitflip, truncate, delete"
    ):
        server.corrupt(STREAM, kind="melt")
    with pytest.raises(ValueError, match="corrupt\\(what='index'\\): valid values are blocks, snapshot"):
        server.corrupt(STREAM, kind="delete", what="index")
    with pytest.raises(ValueError, match=r"no blocks of stream 'STORE' to corrupt .* The store holds: "):
        server.corrupt(STREAM, kind="delete")
    server.restart()


#: What a replica whose store was damaged while it was down does, once it leads the stream: every
#: acknowledged write still there ("recovers": it repaired its copy from the others) or some lost
#: ("loses": it took the damaged copy for a good one). By nats-server release.
RECOVERS, LOSES = "recovers", "loses"
OUTCOMES: dict[tuple[str, str], dict[str, str]] = {
    ("delete", "blocks"): {"2.11": LOSES, "2.12": RECOVERS, "2.15": RECOVERS},
    ("truncate", "blocks"): {"2.11": LOSES, "2.12": RECOVERS, "2.15": RECOVERS},
    ("bitflip", "blocks"): {"2.11": LOSES, "2.12": LOSES, "2.15": LOSES},
    ("delete", "snapshot"): {"2.11": RECOVERS, "2.12": RECOVERS, "2.15": RECOVERS},
}


#: Clean stops a snapshot test may take to get a replica with a snapshot (see :func:`stop`).
SNAPSHOT_STOPS = 10


async def stop(cluster: NatsCluster, index: int, nc: Client, acked: list[str], *, snapshot: bool) -> None:
    """Stop node ``index`` cleanly once its copy holds every write of ``acked`` (a write is
    acknowledged once a majority has it: this follower may not have applied them all yet).
    ``snapshot``: until its store holds a snapshot of the stream's Raft group.  nats-server writes
    one on a clean stop only when the stream's monitor sees the shutdown before its Raft node
    closes (a select between two ready channels inside the server: CI saw a clean stop without
    one, nats 2.11), and only of entries applied since its start: so each new try starts the node
    again and writes once more (``acked`` grows)."""
    node = cluster.nodes[index]
    directory, pattern = store_paths(STREAM, "snapshot", group=cluster.raft_group(STREAM))
    for attempt in range(SNAPSHOT_STOPS):
        await asyncio.to_thread(
            wait_until,
            lambda: messages_in_copy(node),
            f"node {index}'s copy of {STREAM} to hold the {len(acked)} acknowledged writes",
            ok=lambda held: held == len(acked),
            timeout=60,
        )
        node.stop()
        held = node.runtime.stopped_store().list_files(directory)
        if not snapshot or any(re.fullmatch(pattern, path.rpartition("/")[2]) for path in held):
            return
        await asyncio.to_thread(node.restart)
        await nc.jetstream().publish("store.w", b"again", headers={"Nats-Msg-Id": f"again-{attempt}"})
        acked.append(f"again-{attempt}")
    pytest.fail(f"node {index} stopped cleanly {SNAPSHOT_STOPS} times and never wrote a snapshot of {STREAM}")


def messages_in_copy(node: NatsServer) -> int:
    """How many messages ``node``'s own copy of the stream holds (its monitoring ``/jsz``)."""
    assert node.monitor_url is not None
    jsz = monitor_get(node.monitor_url, "/jsz?accounts=true&streams=true")
    for account in jsz.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            if stream.get("name") == STREAM:
                return int(stream["state"]["messages"])
    return 0


def release(version: str) -> str:
    return ".".join(version.split(".")[:2])


@pytest.mark.nats_cluster(size=3, auth="none", tls=False)
@pytest.mark.parametrize(("kind", "what"), [*OUTCOMES, ("truncate", "snapshot"), ("bitflip", "snapshot")])
@pytest.mark.asyncio
async def test_a_followers_damaged_copy(nats_cluster: NatsCluster, kind: str, what: str) -> None:
    nc = await nats_cluster.connect()
    try:
        acked = await fill(nc, replicas=3)
        leader = await nats_cluster.stream_leader(STREAM)
        index = (leader + 1) % nats_cluster.size
        node = nats_cluster.nodes[index]
        await stop(nats_cluster, index, nc, acked, snapshot=what == "snapshot")
        store = node.runtime.stopped_store()
        before = {path: store.read(path) for path in store.list_files("jetstream")}
        damage = nats_cluster.corrupt(index, STREAM, kind=kind, what=what, seed=SEED)
        assert damage.what == what
        check_damage(before, store.list_files("jetstream"), store.read, damage)
        await asyncio.to_thread(node.restart)
        # The other two keep every acknowledged write, whatever the damaged replica does.
        await assert_no_acked_write_lost(nc, STREAM, acked)
        found = OUTCOMES.get((kind, what), {})
        version = release(node.version)
        if version not in found:
            pytest.skip(
                f"what nats-server {node.version} does with a {kind} of its {what} is not recorded here"
            )
        await nats_cluster.wait_until_healthy(timeout=60)
        await nats_cluster.step_down(STREAM, to=index, timeout=60)
        stored = await stored_ids(nc, STREAM)
        lost = [key for key in acked if not stored[key]]
        outcome = LOSES if lost else RECOVERS
        assert outcome == found[version], (
            f"{node.name} (nats-server {node.version}) leading: lost {lost[:10]}"
        )
    finally:
        await nc.close()
