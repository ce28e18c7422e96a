"""Helpers of ``test_external_cluster.py``: reading a cluster's streams from the outer session,
and :class:`OnRequest`, which does what an inner test asks for when it asks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig, StreamInfo

from pytest_aegis.aio import run_sync
from pytest_aegis.natsd.auth import SYSTEM_USER
from pytest_aegis.natsd.cluster import NatsCluster
from pytest_aegis.waiting import async_wait_until, wait_until

PRE_EXISTING = "KEEP_ME"
#: A stream made before the session with its only replica on the node killed first.
ON_ONE_NODE = "KEEP_ME_TOO"
#: Seconds a JetStream request of these helpers may take (both cores busy, three containers).
JS_TIMEOUT = 20.0
#: Seconds the outer session waits for the inner test's request (the inner session starts first).
REQUEST_TIMEOUT = 90.0


async def _names(nc: Client) -> list[str]:
    """The names in the meta group's state (``STREAM.NAMES``: those without a leader too)."""
    reply = await nc.request("$JS.API.STREAM.NAMES", b"{}", timeout=5)
    return list(json.loads(reply.data)["streams"] or [])


def streams(cluster: NatsCluster) -> dict[str, StreamInfo]:
    """Every stream of the cluster (through any live node), by name: the names from the meta
    group's state (``STREAM.LIST``, nats-py's ``streams_info``, leaves out the streams whose leader
    did not answer in time), each stream's info from its leader once it has one."""

    async def read() -> dict[str, StreamInfo]:
        nc = await cluster.connect()
        try:
            js = nc.jetstream(timeout=2)
            return {
                name: await async_wait_until(
                    lambda: js.stream_info(name),  # noqa: B023 (awaited now)
                    f"stream {name} to have a leader",
                    timeout=20,
                    transient=(nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError),
                )
                for name in await _names(nc)
            }
        finally:
            await nc.close()

    return run_sync(read)


def stream_names(cluster: NatsCluster) -> set[str]:
    """The names of the cluster's streams (the meta group's state: those without a leader too)."""

    async def read() -> set[str]:
        nc = await cluster.connect()
        try:
            return set(await _names(nc))
        finally:
            await nc.close()

    return run_sync(read)


def add_pre_existing(cluster: NatsCluster, name: str = PRE_EXISTING, *, replicas: int = 3) -> None:
    """A stream described as the harness's, made before the session: the session must keep it."""

    async def add() -> None:
        nc = await cluster.connect()
        try:
            await nc.jetstream(timeout=JS_TIMEOUT).add_stream(
                StreamConfig(
                    name=name,
                    subjects=[f"{name.lower()}.>"],
                    num_replicas=replicas,
                    description="pytest-aegis: made before the session, must survive it",
                )
            )
        finally:
            await nc.close()

    run_sync(add)


def meta_leader_off(cluster: NatsCluster, node: int) -> int:
    """Have the JetStream meta group led by another node than ``node`` and return its leader:
    when ``node`` leads, the leader steps down naming the next node as the one preferred
    (``$JS.API.META.LEADER.STEPDOWN``, nats-server 2.11 or later) - the condition is made, not
    waited for from placement or an election."""

    async def move() -> int:
        meta = await cluster.meta_leader()
        if meta != node:
            return meta
        preferred = (node + 1) % cluster.size
        nc = await cluster.connect(as_user=SYSTEM_USER)
        try:
            body = json.dumps({"placement": {"preferred": cluster.nodes[preferred].name}}).encode()
            reply = await nc.request("$JS.API.META.LEADER.STEPDOWN", body, timeout=JS_TIMEOUT)
        finally:
            await nc.close()
        answer = json.loads(reply.data)
        assert answer.get("success"), f"meta leader step-down refused: {answer}"
        return await async_wait_until(
            cluster.meta_leader,
            f"the meta group of {cluster.name} to be led by another node than {node}",
            timeout=JS_TIMEOUT,
            ok=lambda leader: leader != node,
        )

    return run_sync(move)


class OnRequest:
    """Runs ``action`` in a thread when the inner test writes its request file, then writes the
    file the inner test waits for; :meth:`result` (after the inner session) re-raises its error,
    and says whether it ran and when it was done."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
        self.request, self.done = directory / "request", directory / "done"
        monkeypatch.setenv("AEGIS_TEST_REQUEST", str(self.request))
        monkeypatch.setenv("AEGIS_TEST_DONE", str(self.done))
        self._action = action
        self._over = threading.Event()
        self.done_at: float | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="on-request")
        self._future: Future[None] = self._pool.submit(self._serve)

    def _serve(self) -> None:
        asked = wait_until(
            lambda: self.request.exists() or self._over.is_set(),
            "the inner test's request",
            timeout=REQUEST_TIMEOUT,
        )
        if asked and self.request.exists():
            self._action()
            self.done_at = time.monotonic()
            self.done.write_text("done")

    def close(self) -> None:
        """Let the thread end (it stops waiting for a request that will not come)."""
        self._over.set()
        self._pool.shutdown(wait=False)

    def result(self) -> float:
        """When the action was done (``time.monotonic()``); fails the test if it never was."""
        self._over.set()
        try:
            self._future.result(timeout=REQUEST_TIMEOUT + 5)
        finally:
            self._pool.shutdown(wait=False)
        assert self.done_at is not None, "the inner test never asked for the kill"
        return self.done_at


def aegis_lines(result: Any) -> list[str]:
    return [line for line in result.outlines + result.errlines if "aegis: external NATS" in line]
