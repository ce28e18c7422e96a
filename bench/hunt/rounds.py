"""One release's rounds of the hunt (run by ``python -m bench.hunt``, not collected by the test
suite: ``testpaths`` is ``tests``).  Settings come from the environment:

``HUNT_OUT`` (the JSON-lines file each round is appended to), ``HUNT_SECONDS`` (rounds begin until
this much time has passed), ``HUNT_SEED`` (round ``n`` uses seed ``HUNT_SEED + n``), ``HUNT_FAULTS``
(comma-separated nemesis faults; ``power`` puts the nodes' stores on power-loss disks),
``HUNT_STEPS``, ``HUNT_SYNC`` (the spec's ``sync_interval``, or empty for nats-server's default).

A round's ``outcome``: ``ok`` (every acknowledged write there once), ``lost`` or ``duplicated``
(with the ids), ``stuck`` (the cluster or the stream did not come back within the deadlines),
``error`` (anything else, with its text)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_aegis import NatsCluster, NatsServer, WaitTimeout
from pytest_aegis.assertions.jetstream import stored_ids
from tests.nats_support import write_until

STREAM = "HUNT"


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def healthz(node: NatsServer) -> str:
    """What the node's ``/healthz`` says now, its error's text included."""
    try:
        with urllib.request.urlopen(f"{node.monitor_url}/healthz", timeout=2) as reply:
            return str(reply.read().decode())
    except urllib.error.HTTPError as exc:
        return f"{exc.code}: {exc.read().decode(errors='replace')}"
    except OSError as exc:
        return f"unreachable: {exc}"


async def one_round(cluster: NatsCluster, seed: int, faults: list[str], steps: int) -> dict[str, Any]:
    nc = await cluster.connect()
    record: dict[str, Any] = {"seed": seed, "version": cluster.nodes[0].version, "faults": faults}
    nemesis = cluster.nemesis(
        seed=seed, faults=faults, streams=[STREAM], steps=steps, hold=2.0, gap=1.0, timeout=60
    )  # the schedule only: nothing runs before the block
    try:
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["hunt.>"], num_replicas=3)
        stop, acked = asyncio.Event(), list[str]()
        writer = asyncio.create_task(write_until(js, "hunt.w", stop, acked))
        try:
            async with nemesis:
                await nemesis.wait()
            record["steps"] = [str(step) for step in nemesis.done]
        finally:
            stop.set()
            record["tried"] = await writer
        record["acked"] = len(acked)
        stored = await stored_ids(nc, STREAM, within=60)
        lost = [key for key in acked if not stored[key]]
        duplicated = {key: n for key, n in stored.items() if n > 1}
        record |= {
            "stored": sum(stored.values()),
            "lost": lost[:50],
            "duplicated": dict(list(duplicated.items())[:50]),
        }
        record["outcome"] = "lost" if lost else "duplicated" if duplicated else "ok"
    except WaitTimeout as exc:
        nodes = {node.name: healthz(node) if node.is_running else "not running" for node in cluster.nodes}
        record |= {"outcome": "stuck", "error": str(exc)[:2000], "healthz": nodes}
    except Exception as exc:  # a round's failure is a result to record, not the end of the hunt
        record |= {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}
    finally:
        await nc.close()
    record["history"] = nemesis.history
    return record


@pytest.mark.asyncio
async def test_hunt(nats_cluster_factory: Callable[..., NatsCluster]) -> None:
    out = Path(setting("HUNT_OUT", "bench-results/hunt-rounds.jsonl"))
    seconds = float(setting("HUNT_SECONDS", "300"))
    base = int(setting("HUNT_SEED", "1"))
    faults = setting("HUNT_FAULTS", "kill,pause,partition,latency,lame_duck").split(",")
    steps = int(setting("HUNT_STEPS", "8"))
    sync = setting("HUNT_SYNC", "")
    spec: dict[str, Any] = {
        "auth": "none",
        "tls": False,
        "lame_duck_duration": 30,
        "lame_duck_grace_period": 1,
    }
    if sync:
        spec["sync_interval"] = sync
    if "power" in faults:  # a node's power cut: its store on a power-loss disk
        spec["power_loss"] = True
    began, number = time.monotonic(), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    while time.monotonic() - began < seconds:
        number += 1
        cluster = nats_cluster_factory(size=3, **spec)
        started = time.monotonic()
        record = await one_round(cluster, base + number, faults, steps)
        record |= {
            "round": number,
            "seconds": round(time.monotonic() - started, 1),
            "sync_interval": sync or None,
        }
        cluster.close()
        with out.open("a") as lines:
            lines.write(json.dumps(record) + "\n")
        print(
            f"round {number} seed {base + number}: {record['outcome']} ({record.get('acked', '?')} acked)",
            flush=True,
        )
