"""Suite ``cluster``: time-to-healthy of a 3-node NATS cluster, and the health round trip through
an idle :class:`~pytest_aegis.FaultProxy`.

``cluster_healthy`` (TLS + user/password + JetStream on every node, routes secured), two
contenders interleaved (A, B, A, B, ...) in one run:

``aegis``
    ``NatsPool.start_cluster(spec, 3)`` (material, route layout, three configs, three spawns,
    one after another, each to its route listener's line) and ``await cluster.wait_until_healthy()``.
``bare_popen``
    The same three configs (``natsd.conf.render`` of the materials the aegis rep just made, on
    fresh route ports, in their own directories and stores), ``subprocess.Popen`` of all three at
    once (as by hand), stderr read to the route listener's line, then the same readiness
    (:func:`pytest_aegis.natsd.cluster.all_healthy` of every node's monitoring endpoints, polled as
    ``wait_until_healthy`` polls, then
    :func:`pytest_aegis.natsd.placement.wait_for_placement` through the meta leader).

``proxy_health_rtt``: on one TLS + user/password server, the ``health`` suite's bare responder in a
process of its own (as the service under test would be) and two clients in the bench process, one
direct, one through a ``FaultProxy`` with no fault; their requests alternate, each going first in
every other pair; round trips compared by percentile.  Stops are outside the timed regions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import nats

from bench import stats
from bench.health_rtt import BARE_SUBJECT, start_bare
from bench.procs import BenchError, read_until, terminate
from pytest_aegis.backends.local.backend import LocalBackend
from pytest_aegis.certs import AegisCA
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import WaitTimeout
from pytest_aegis.faults.targets import NatsFaultProxy
from pytest_aegis.natsd.cluster import ClusterLayout, NatsCluster
from pytest_aegis.natsd.conf import render
from pytest_aegis.natsd.health import all_healthy, read_health
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.placement import wait_for_placement
from pytest_aegis.natsd.pool import NatsPool
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.natsd.startup import ROUTES_READY
from pytest_aegis.ports import lease_port, port_was_taken
from pytest_aegis.session import SessionState
from pytest_aegis.waiting import async_wait_until

NAME = "cluster"
SIZE = 3
TARGETS: dict[str, float] = {"healthy_median_ms": 2000, "ratio_max": 1.2, "proxy_p99_delta_ms": 0.3}
#: (cluster reps, round trips per contender): full run, --quick.
#: 20000 round trips: the p99 of 5000 (their 50th slowest) moved by 0.2 ms between runs of one build.
REPS = {"full": (40, 20000), "quick": (2, 100)}
READY_TIMEOUT = 20.0
_READY = ROUTES_READY.encode()  # a cluster node's last startup line, as the plugin waits for it
_MONITOR = re.compile(rb"Starting http monitor on (\S+):(\d+)")
_CLIENTS = re.compile(rb"Listening for client connections on (\S+):(\d+)")


def _progress(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


# -- time to healthy -----------------------------------------------------------------


async def aegis_once(pool: NatsPool, spec: NatsSpec) -> tuple[float, NatsCluster]:
    started = time.perf_counter()
    cluster = pool.start_cluster(spec, SIZE)
    await cluster.wait_until_healthy()
    return time.perf_counter() - started, cluster


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    """Keep reading ``stream`` into ``into`` on a daemon thread, until the process closes it."""
    threading.Thread(target=lambda: into.extend(iter(stream.readline, b"")), daemon=True).start()


def _tail(lines: list[bytes], count: int = 15) -> str:
    return "\n".join("  " + line.decode("utf-8", "replace") for line in lines[-count:])


def _logged_port(pattern: re.Pattern[bytes], lines: list[bytes], what: str, index: int) -> int:
    port = next((m.group(2) for line in lines if (m := pattern.search(line))), None)
    if port is None:
        raise BenchError(f"bare node {index} logged no {what} port:\n{_tail(lines)}")
    return int(port)


class PortTaken(BenchError):
    """A bare node died at start: its route port, free when picked, was taken before it bound it
    (another node's outgoing route can get it as its source port)."""


def _is_ready(line: bytes) -> bool:
    return _READY in line


def _spawn(
    binary: Path, configs: list[tuple[Path, str]], scheme: str, procs: list[Any], logs: list[list[bytes]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Popen each config into ``procs`` (their lines into ``logs``), each read to its ready line;
    the nodes' monitoring endpoints (name, URL) and client URLs, from their startup lines."""
    monitors, clients = [], []
    for path, text in configs:
        path.write_text(text)
        procs.append(subprocess.Popen([str(binary), "-c", str(path)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))  # fmt: skip
    for index, proc in enumerate(procs):
        assert proc.stderr is not None
        try:
            lines = read_until(proc, proc.stderr, _is_ready, READY_TIMEOUT, "bare node", _tail)
        except BenchError as exc:
            if not port_was_taken(exc):
                raise
            raise PortTaken(str(exc)) from None
        logs.append(lines)
        _drain(proc.stderr, lines)  # as the plugin does: a full pipe would stall the node
        monitor_port = _logged_port(_MONITOR, lines, "monitoring", index)
        monitors.append((f"bare-{index}", f"http://127.0.0.1:{monitor_port}"))
        clients.append(f"{scheme}://127.0.0.1:{_logged_port(_CLIENTS, lines, 'client', index)}")
    return monitors, clients


async def _wait_for_placement(
    url: str, replicas: int, connect_kwargs: Callable[[str], dict[str, Any]]
) -> None:
    """The plugin's placement probe, through the bare node at ``url`` (the meta leader)."""
    nc = await asyncio.wait_for(nats.connect(**connect_kwargs(url)), READY_TIMEOUT)
    try:
        await wait_for_placement(nc, replicas, timeout=READY_TIMEOUT, where="the bare cluster")
    finally:
        await nc.close()


async def bare_once(
    binary: Path,
    materials: list[NatsMaterial],
    scratch: Path,
    connect_kwargs: Callable[[str], dict[str, Any]],
) -> float:
    """The same configs on fresh route ports, Popen'd, waited on with the same readiness
    (``connect_kwargs(url)``: how the placement probe connects to a bare node).  A start whose
    route port was taken is made again on new ports, and only the start that got its ports is
    timed (the plugin's own retry of a taken port counts in its time)."""
    attempts = itertools.count()
    return await async_wait_until(
        lambda: _bare_start(binary, materials, scratch / f"try-{next(attempts)}", connect_kwargs),
        "a bare start whose nodes all get their route ports",
        timeout=3 * READY_TIMEOUT,
        transient=(PortTaken,),
        interval=0.0,
    )


async def _bare_start(
    binary: Path,
    materials: list[NatsMaterial],
    scratch: Path,
    connect_kwargs: Callable[[str], dict[str, Any]],
) -> float:
    layout = dataclasses.replace(  # straight routes: no proxies between the bare nodes
        materials[0].cluster or _no_cluster(), route_ports=[lease_port() for _ in materials], via={}
    )
    configs = []
    for index, material in enumerate(materials):
        directory = scratch / f"bare-{index}"
        directory.mkdir(parents=True)
        node = dataclasses.replace(material, cluster=layout, node_index=index)
        configs.append(
            (directory / "nats.conf", render(node, name=f"bare-{index}", store_dir=directory / "js"))
        )
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[list[bytes]] = []
    try:
        monitors, clients = _spawn(binary, configs, "tls" if materials[0].spec.tls else "nats", procs, logs)

        def health() -> list[Any]:
            for index, proc in enumerate(procs):
                if proc.poll() is not None:
                    raise BenchError(
                        f"bare node {index} exited with code {proc.returncode} after it was ready:\n"
                        f"{_tail(logs[index])}"
                    )
            return [read_health(name, url) for name, url in monitors]

        try:
            seen = await async_wait_until(
                lambda: asyncio.to_thread(health),
                "the bare cluster to be healthy",
                timeout=READY_TIMEOUT,
                ok=all_healthy,
                transient=(OSError,),
                interval=0.02,
            )
        except WaitTimeout as exc:
            tails = "\n".join(f"bare node {i}'s last lines:\n{_tail(lines)}" for i, lines in enumerate(logs))
            raise BenchError(f"{exc}\n{tails}") from None
        leader = [name for name, _ in monitors].index(str(seen[0].meta_leader))
        await _wait_for_placement(clients[leader], len(seen), connect_kwargs)
        return time.perf_counter() - started
    finally:
        for proc in procs:
            terminate(proc)


def _connect_kwargs(node: NatsServer, url: str) -> dict[str, Any]:
    """How the aegis node's clients connect (identity, session CA), to ``url`` instead."""
    return node.connect_kwargs(servers=[url])


def _no_cluster() -> ClusterLayout:
    raise BenchError("the aegis cluster's nodes have no cluster layout")


# -- health round trip through an idle proxy ------------------------------------------------


async def proxy_rtt(pool: NatsPool, spec: NatsSpec, count: int, scratch: Path) -> dict[str, list[float]]:
    server = pool.start(spec)
    proxy = NatsFaultProxy(server)
    responder = start_bare(server, scratch / "bare-responder.log")  # as a service would: its own process
    direct = await server.connect()
    proxied = await proxy.connect()
    samples: dict[str, list[float]] = {"direct": [], "proxy": []}
    paths = (("direct", direct), ("proxy", proxied))
    try:
        for index in range(count + 50):  # 50 warm-up pairs
            for name, client in paths if index % 2 else paths[::-1]:  # each goes first half the time
                started = time.perf_counter()
                await client.request(BARE_SUBJECT, b"{}", timeout=2)
                if index >= 50:
                    samples[name].append(time.perf_counter() - started)
    finally:
        for client in (proxied, direct):
            await client.close()
        terminate(responder)
        proxy.close()
        server.stop()
    return samples


# -- the run -----------------------------------------------------------------------


async def _measure(pool: NatsPool, binary: Path, scratch: Path, reps: int, count: int) -> dict[str, Any]:
    spec = NatsSpec()
    aegis: list[float] = []
    bare: list[float] = []
    for index in range(1 + reps):  # one warm-up pair
        elapsed, cluster = await aegis_once(pool, spec)
        materials = [node.material for node in cluster.nodes]
        cluster.close()  # its nodes, and its route proxies' loop thread
        via = functools.partial(_connect_kwargs, cluster.nodes[0])
        bare_s = await bare_once(binary, materials, scratch / f"rep-{index}", via)
        if index:
            aegis.append(elapsed)
            bare.append(bare_s)
    _progress(
        f"healthy: aegis {stats.to_ms(stats.median(aegis)):.0f} ms, "
        f"bare {stats.to_ms(stats.median(bare)):.0f} ms"
    )
    rtt = await proxy_rtt(pool, spec, count, scratch)
    return {"aegis": aegis, "bare": bare, "rtt": rtt}


def _report(m: dict[str, Any], quick: bool, reps: int, count: int) -> dict[str, Any]:
    direct, proxied = stats.summarize(m["rtt"]["direct"]), stats.summarize(m["rtt"]["proxy"])
    aegis, bare = stats.summarize(m["aegis"]), stats.summarize(m["bare"])
    ratio = stats.ratio(stats.median(m["aegis"]), stats.median(m["bare"]))
    delta = round(float(proxied["p99_ms"]) - float(direct["p99_ms"]), stats.DIGITS)
    checks = {
        "healthy_median_ms": float(aegis["median_ms"]) <= TARGETS["healthy_median_ms"],
        "ratio_max": ratio <= TARGETS["ratio_max"],
        "proxy_p99_delta_ms": delta <= TARGETS["proxy_p99_delta_ms"],
    }
    return {
        "suite": NAME,
        "what": f"time to healthy of a {SIZE}-node TLS + user/password + JetStream cluster (aegis vs "
        "bare Popen, same configs and readiness, interleaved); health round trip direct vs through an "
        "idle FaultProxy",
        "quick": quick,
        "reps": reps,
        "round_trips": count,
        "results": {
            "cluster_healthy": {"aegis": aegis, "bare_popen": bare, "ratio": ratio},
            "proxy_health_rtt": {"direct": direct, "proxy": proxied, "p99_delta_ms": delta},
        },
        "samples_ms": {
            "aegis": [round(stats.to_ms(v), stats.DIGITS) for v in m["aegis"]],
            "bare_popen": [round(stats.to_ms(v), stats.DIGITS) for v in m["bare"]],
        },
        "targets": dict(TARGETS),
        "target_checks": checks,
        "meets_targets": all(checks.values()),
    }


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Run the cluster suite (``reps`` from the CLI is ignored: the suite's counts are fixed)."""
    del reps
    cluster_reps, count = REPS["quick" if quick else "full"]
    session = SessionState()
    scratch = Path(tempfile.mkdtemp(prefix="aegis-bench-cluster-"))
    config = AegisConfig()
    backend = LocalBackend(config, session)
    ca = AegisCA(session.new_dir("ca"))
    pool = NatsPool(backend, session, lambda: ca)
    try:
        measured = asyncio.run(_measure(pool, backend.nats_bin, scratch, cluster_reps, count))
        return _report(measured, quick, cluster_reps, count)
    finally:
        pool.close()
        session.close()
        shutil.rmtree(scratch, ignore_errors=True)
