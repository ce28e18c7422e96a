"""--aegis-backend=external against a cluster: a comma-separated list of URLs.

This (outer) session starts a real 3-node cluster (TLS + user/password + JetStream, routes
secured) with ``nats_cluster_factory``; an inner pytest session points ``--aegis-backend=external``
at every node's URL (credentials and CA through ``AEGIS_EXTERNAL_NATS_*``, never argv).  Nodes are
killed by the outer session, when the inner test asks through a file and waits for the answer, so
each condition holds exactly when the inner session needs it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from external_cluster_support import (
    ON_ONE_NODE,
    PRE_EXISTING,
    OnRequest,
    add_pre_existing,
    aegis_lines,
    meta_leader_off,
    stream_names,
    streams,
)
from support import external_env, run_inner

from pytest_aegis.aio import run_sync
from pytest_aegis.natsd.cluster import NatsCluster

INNER_HEALTHY = """
import os
import re

import pytest
from nats.js.api import StreamConfig

from pytest_aegis import assert_health_check, assert_instance_registered
from pytest_aegis.assertions.service import DEFINITIONS_BUCKET, INSTANCES_BUCKET
from pytest_aegis.errors import ExternalServerError

URLS = os.environ["AEGIS_EXTERNAL_NATS_URL"].split(",")


@pytest.mark.asyncio
async def test_nats_client_gets_every_url_and_a_test_makes_a_stream(nats_server, nats_client):
    assert nats_server.url == URLS[0]
    assert nats_server.connect_kwargs()["servers"] == URLS
    assert nats_server.env()["AEGIS_NATS_URL"] == ",".join(URLS)
    assert f"tls://127.0.0.1:{nats_client.connected_url.port}" in URLS
    js = nats_client.jetstream(timeout=5)
    await js.add_stream(
        StreamConfig(
            name="MADE_BY_A_TEST",
            subjects=["made.>"],
            num_replicas=3,
            description="pytest-aegis: made by a test",
        )
    )
    assert (await js.publish("made.x", b"1")).stream == "MADE_BY_A_TEST"


@pytest.mark.asyncio
async def test_the_service_gets_every_url_and_is_healthy(aegis_app_factory, nats_client):
    app = aegis_app_factory(env={"AEGIS_JETSTREAM_REPLICAS": "3"})
    assert app.env["AEGIS_NATS_URL"] == ",".join(URLS)
    await assert_health_check(nats_client, service=app.service_name, within=2)
    await assert_instance_registered(nats_client, app.service_name, app.instance_id, within=5)
    for name in (INSTANCES_BUCKET, DEFINITIONS_BUCKET):  # the service's, made R3: removed at the end
        bucket = await nats_client.jetstream().key_value(name)
        assert (await bucket.status()).stream_info.config.num_replicas == 3


def test_lifecycle_is_refused_naming_every_url(nats_server):
    shown = re.escape(", ".join(URLS))
    for action in ("stop", "kill", "restart", "pause", "resume"):
        refused = (
            rf"^{action}\\(\\) is not available on the external backend: the NATS server at {shown} "
            rf"was started outside the harness and is not ours to {action}\\. "
        )
        with pytest.raises(ExternalServerError, match=refused):
            getattr(nats_server, action)()
    with pytest.raises(ExternalServerError, match="not ours to pause"), nats_server.paused():
        pass
    assert not nats_server.is_paused
    password = nats_server.credentials["password"]
    refused = rf"^reload\\(\\) is not available .* the NATS server at {shown} was started outside"
    with pytest.raises(ExternalServerError, match=refused):
        nats_server.reload(password="rotated")
    assert nats_server.credentials["password"] == password  # nothing changed


@pytest.mark.nats_cluster
def test_a_cluster_of_the_harness_is_skipped(nats_cluster):
    raise AssertionError("must not run on external")
"""

#: The inner tests' way to make an R3 stream while a node is dead (spliced into their text).
ADD_STREAM = """
from pytest_aegis.natsd.placement import NO_PEERS


async def add_stream(js, config):
    try:
        return await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != NO_PEERS:  # not "no suitable peers for placement"
            raise
    # The meta leader counts the dead node out already (nats-server 2.11 may, within seconds;
    # 2.15 still places on it 40 s on): then R2, on the two live nodes, which it knows are up.
    return await js.add_stream(dataclasses.replace(config, num_replicas=2))
"""

INNER_NODE_LOST = (
    """
import asyncio
import dataclasses
import os
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import StreamConfig

from pytest_aegis.waiting import async_wait_until, wait_until

URLS = os.environ["AEGIS_EXTERNAL_NATS_URL"].split(",")
REQUEST, DONE = Path(os.environ["AEGIS_TEST_REQUEST"]), Path(os.environ["AEGIS_TEST_DONE"])
# While the streams elect leaders after a node's loss, JetStream answers nothing or "unavailable".
ELECTING = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


"""
    + ADD_STREAM
    + """

def outer_session_kills(what):
    REQUEST.write_text(what)
    wait_until(DONE.exists, f"the outer session to kill {what}", timeout=30)


def stream(name):
    return StreamConfig(
        name=name, subjects=[f"{name.lower()}.>"], num_replicas=3, description="pytest-aegis: a test's"
    )


@pytest.mark.asyncio
async def test_a_stream_then_the_first_node_is_killed(nats_server):
    nc = await nats_server.connect(dont_randomize=True)  # to the first URL, the node to be killed
    try:
        assert f"tls://127.0.0.1:{nc.connected_url.port}" == URLS[0]
        js = nc.jetstream(timeout=2)
        await js.add_stream(stream("BEFORE_THE_KILL"))
        await asyncio.to_thread(outer_session_kills, "the first URL's node")
        # The client fails over to another node; the stream keeps a quorum (2 of 3 replicas).
        ack = await async_wait_until(
            lambda: js.publish("before_the_kill.x", b"1"), "the stream to take a message",
            timeout=20, transient=ELECTING,
        )
        assert ack.stream == "BEFORE_THE_KILL"
        assert f"tls://127.0.0.1:{nc.connected_url.port}" in URLS[1:]
        await async_wait_until(
            lambda: add_stream(js, stream("AFTER_THE_KILL")), "a stream to be made", timeout=20,
            transient=ELECTING,
        )
        for name in ("BEFORE_THE_KILL", "AFTER_THE_KILL"):  # settled when the session ends
            await async_wait_until(
                lambda: js.stream_info(name), f"{name} to have a leader", timeout=20, transient=ELECTING
            )
    finally:
        await nc.close()
"""
)

INNER_FIRST_NODE_DEAD = (
    """
import dataclasses
import os

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import StreamConfig

from pytest_aegis.waiting import async_wait_until

URLS = os.environ["AEGIS_EXTERNAL_NATS_URL"].split(",")
# The streams of the dead node elect leaders on the others meanwhile: JetStream may not answer yet.
ELECTING = (
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


"""
    + ADD_STREAM
    + """

@pytest.mark.asyncio
async def test_a_stream_made_with_the_first_node_dead(nats_client):
    assert f"tls://127.0.0.1:{nats_client.connected_url.port}" in URLS[1:]
    js = nats_client.jetstream(timeout=2)
    made = StreamConfig(
        name="MADE", subjects=["made.>"], num_replicas=3, description="pytest-aegis: a test's"
    )
    await async_wait_until(
        lambda: add_stream(js, made), "the stream to be made", timeout=20, transient=ELECTING
    )
    ack = await async_wait_until(
        lambda: js.publish("made.x", b"1"), "the stream to take a message", timeout=20, transient=ELECTING
    )
    assert ack.stream == "MADE"
"""
)

INNER_ALL_LOST = """
import os
from pathlib import Path

import pytest
from nats.js.api import StreamConfig

from pytest_aegis.waiting import wait_until

REQUEST, DONE = Path(os.environ["AEGIS_TEST_REQUEST"]), Path(os.environ["AEGIS_TEST_DONE"])


@pytest.mark.asyncio
async def test_a_stream_then_every_node_is_killed(nats_server):
    nc = await nats_server.connect()
    try:
        await nc.jetstream(timeout=5).add_stream(
            StreamConfig(
                name="LEFT_BEHIND", subjects=["left.>"], num_replicas=3,
                description="pytest-aegis: a test's",
            )
        )
    finally:
        await nc.close()
    REQUEST.write_text("every node")
    wait_until(DONE.exists, "the outer session to kill every node", timeout=30)
"""

#: The inner session's conftest where every node is lost: it records how each connect of the
#: end-of-session cleanup (``connect_any``, one URL at a time) failed, to ``AEGIS_TEST_CONNECTS``.
RECORD_CLEANUP_CONNECTS = """
import json
import os

import pytest_aegis.backends.external.nats as external
from pytest_aegis.errors import NatsConnectError

_open_client = external.open_client


async def _recorded(kwargs, **options):
    try:
        return await _open_client(kwargs, **options)
    except NatsConnectError as exc:
        with open(os.environ["AEGIS_TEST_CONNECTS"], "a") as out:
            errors = [type(error).__name__ for error in exc.errors]
            attempt = {"servers": list(kwargs["servers"]), "reason": exc.reason, "errors": errors}
            out.write(json.dumps(attempt) + "\\n")
        raise


external.open_client = _recorded
"""


@pytest.fixture
def cluster(nats_cluster_factory: Callable[..., NatsCluster]) -> NatsCluster:
    return nats_cluster_factory(size=3, auth="userpass", tls=True)


@pytest.fixture
def on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OnRequest]]:
    made: list[OnRequest] = []

    def make(action: Callable[[], None]) -> OnRequest:
        directory = tmp_path / f"requests-{len(made)}"
        directory.mkdir()
        made.append(OnRequest(directory, monkeypatch, action))
        return made[-1]

    yield make
    for served in made:  # a test that failed before reading the result: let the thread end
        served.close()


def test_every_url_reaches_the_clients_and_the_service_and_the_session_cleans_up_after_itself(
    inner: Any, monkeypatch: pytest.MonkeyPatch, cluster: NatsCluster
) -> None:
    add_pre_existing(cluster)
    external_env(monkeypatch, cluster.nodes[0], urls=cluster.urls)
    inner.makepyfile(test_inner=INNER_HEALTHY)

    result = run_inner(inner, "-rs", "-W", "error")

    result.assert_outcomes(passed=3, skipped=1)
    version, shown = cluster.nodes[0].version, ", ".join(cluster.urls)
    result.stdout.fnmatch_lines(
        [
            f"aegis: backend external (nats-server {version} on cluster of 3 at {shown}, "
            f"{cluster.name}-n? answering: tls+userpass+js, TLS verified with the CA *, as aegis)*",
            f"SKIPPED*nats_cluster needs servers the harness starts; the external backend uses the "
            f"cluster of 3 at {shown}",
        ]
    )
    # The security matrix counts the tests against the cluster as a cluster's.
    result.stdout.re_match_lines([r"tls\+userpass\+js +userpass +yes +no +valid +cluster +[1-9]"])
    assert cluster.nodes[0].credentials["password"] not in result.stdout.str() + result.stderr.str()
    # The test's stream and the service's R3 buckets were removed at the end; the stream made
    # before the session (with the same description prefix) was not.
    assert aegis_lines(result) == []
    assert stream_names(cluster) == {PRE_EXISTING}


@pytest.mark.parametrize("when", ["before-the-session", "during-the-session"])
def test_the_first_node_lost_the_session_cleans_up_through_another(
    inner: Any,
    monkeypatch: pytest.MonkeyPatch,
    cluster: NatsCluster,
    on_request: Callable[..., OnRequest],
    when: str,
) -> None:
    add_pre_existing(cluster)
    # The node lost never leads the meta group: the test is about a session that loses its first
    # URL's node, not about the two left electing a meta leader (a round of 4 to 9 s in
    # nats-server, another after a split vote), which could outlast the waits here.
    if when == "before-the-session":
        # The session starts (and notes the streams that exist) through the second URL, while
        # the first URL's node, dead, holds the only replica of a stream: it has no leader, and
        # the session must still know it existed before (and keep it).  The meta leader placed
        # that replica; if on its own node, it hands the meta group over.
        add_pre_existing(cluster, ON_ONE_NODE, replicas=1)
        lost = run_sync(lambda: cluster.stream_leader(ON_ONE_NODE))
        meta_leader_off(cluster, lost)
        order = [lost, *(index for index in range(cluster.size) if index != lost)]
        external_env(monkeypatch, cluster.nodes[0], urls=[cluster.urls[i] for i in order])
        cluster.kill(lost)
        run_sync(lambda: cluster.wait_until_healthy())  # the two left still have their meta leader
        inner.makepyfile(test_inner=INNER_FIRST_NODE_DEAD)
        served, kept = None, {PRE_EXISTING, ON_ONE_NODE}
    else:  # the session starts through the first URL's node; its test has it killed under its client
        meta = run_sync(cluster.meta_leader)
        lost = next(index for index in range(cluster.size) if index != meta)
        order = [lost, *(index for index in range(cluster.size) if index != lost)]
        external_env(monkeypatch, cluster.nodes[0], urls=[cluster.urls[i] for i in order])
        inner.makepyfile(test_inner=INNER_NODE_LOST)
        served, kept = on_request(lambda: cluster.kill(lost)), {PRE_EXISTING}

    result = run_inner(inner, "-W", "error")

    if served is not None:
        served.result()
    result.assert_outcomes(passed=1)
    assert not cluster.nodes[lost].is_running
    assert aegis_lines(result) == []
    assert stream_names(cluster) == kept


def test_no_node_answering_at_the_end_is_one_line_naming_what_was_left_behind(
    inner: Any,
    monkeypatch: pytest.MonkeyPatch,
    cluster: NatsCluster,
    on_request: Callable[..., OnRequest],
) -> None:
    external_env(monkeypatch, cluster.nodes[0], urls=cluster.urls)
    connects = inner.path / "connects.jsonl"
    monkeypatch.setenv("AEGIS_TEST_CONNECTS", str(connects))
    inner.makeconftest(RECORD_CLEANUP_CONNECTS)
    inner.makepyfile(test_inner=INNER_ALL_LOST)

    def kill_every_node() -> None:
        for index in range(cluster.size):
            cluster.kill(index)

    served = on_request(kill_every_node)
    result = run_inner(inner, "-W", "error")
    served.result()

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    refused = "ConnectionRefusedError: *Connect call failed*"
    nodes = "; ".join(f"{url}: {refused}" for url in cluster.urls)
    [line] = aegis_lines(result)
    assert re.fullmatch(
        r"aegis: external NATS: could not remove what this session made \(no node could: .*\); left "
        r"behind: the streams and KV buckets it made \(description starting 'pytest-aegis', created "
        r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)",
        line,
    ), line
    result.stdout.fnmatch_lines(
        [f"aegis: external NATS: could not remove what this session made (no node could: {nodes})*"]
    )
    # No reconnect noise: the refusals are in that line only, and the session ended at once.
    noise = re.compile("refused|Connect call failed|nats: |reconnect", re.I)
    noisy = [out for out in result.outlines + result.errlines if noise.search(out)]
    assert noisy == [line]
    # The session ended at once: each node's connect ended at its refusal ("unreachable"), not at
    # its deadline ("timeout"), and without nats-py's reconnect loop (one_attempt: a refusal and at
    # most one more, then nats-py gives up; a loop refuses a hundred times, for seconds).
    tried = [json.loads(attempt) for attempt in connects.read_text().splitlines()]
    assert [attempt["servers"] for attempt in tried] == [[url] for url in cluster.urls], tried
    for attempt in tried:
        refusals = attempt["errors"].count("ConnectionRefusedError")
        assert attempt["reason"] == "unreachable" and 1 <= refusals <= 2, attempt
    # What the line says is left is there: the nodes started again on their stores hold it.
    since = dt.datetime.strptime(line.rpartition("created since ")[2], "%Y-%m-%d %H:%M:%S UTC)").replace(
        tzinfo=dt.UTC
    )
    for index in range(cluster.size):
        cluster.restart(index)
    run_sync(lambda: cluster.wait_until_healthy())
    left = streams(cluster)
    assert set(left) == {"LEFT_BEHIND"}
    assert left["LEFT_BEHIND"].config.description == "pytest-aegis: a test's"
    assert left["LEFT_BEHIND"].created is not None and since <= left["LEFT_BEHIND"].created
