"""Suite ``containers``: time-to-ready of containers, the docker backend against testcontainers.

*Time-to-ready* runs from the start of creating the container until the first
client connection completes (``nats.connect`` or a psycopg login).  Each
configuration measures its contenders interleaved (A, B, A, B, ...) in one run:

``aegis`` (NATS, plain + JetStream and TLS + user/password + JetStream)
    The docker backend's path: material, ``DockerBackend.start_nats`` (create,
    config and certs in with ``put_archive``, start, follow the output until
    "Server is ready"), then ``await server.connect()``.

``testcontainers`` (NATS)
    testcontainers' ``NatsContainer`` with its own readiness (``wait_for_logs``
    for "Server is ready", polling the log every ``TC_POOLING_INTERVAL``, 1 s
    by default), then the same ``nats.connect``.  Changed, only so it runs on a
    host-network-only engine: no exposed ports, ``network="host"``, and the
    command line gives the host ports (plain: ``-a 127.0.0.1 -p PORT -m MPORT -js``;
    TLS: the same config and certificates as the aegis rep, copied in with
    testcontainers' own ``with_copy_into_container``, ``-c <conf>``); the URL
    is built as ``nats://127.0.0.1:PORT`` instead of ``nats_uri()``.

``aegis`` (PostgreSQL)
    ``DockerBackend.start_postgres`` (the entrypoint's initdb, its temporary
    server, the real server; ready at a "ready to accept connections" line
    whose TCP login succeeds), then a psycopg login.

``testcontainers`` (PostgreSQL)
    testcontainers' ``PostgresContainer`` with its own readiness (``psql -c
    'select version()'`` executed in the container, retried every
    ``TC_POOLING_INTERVAL``), then the same psycopg login.  Changed for host
    networking: no exposed ports, ``network="host"``, env ``PGPORT``, command
    ``postgres -c listen_addresses=127.0.0.1``; the DSN is built with
    127.0.0.1 instead of ``get_connection_url()``.

``first_ready_line`` / ``final_ready_line`` (PostgreSQL, per contender)
    From the same start to the image's own first and last "ready to accept
    connections" lines, by the engine's log timestamps.  The entrypoint's first
    server is a temporary one without TCP (initdb, password, init scripts), so
    the final line is the floor any readiness check can reach; the target is
    set against the first line, the stricter reading of "its own first ready line".

Removal of containers is outside the timed region.  One session, CA and engine
connection per run, as per pytest session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import psycopg

from bench import stats
from bench.nats_ready import _DropSslEofNoise, bare_connect_kwargs
from pytest_aegis.certs import AegisCA
from pytest_aegis.config import AegisConfig
from pytest_aegis.natsd.conf import render
from pytest_aegis.natsd.material import NatsMaterial, prepare
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState

NAME = "containers"
NATS_CONFIGS: dict[str, NatsSpec] = {
    "nats_plain_js": NatsSpec(auth="none", tls=False),
    "nats_tls_userpass_js": NatsSpec(),
}
#: The issue's targets: a NATS container ready in a median of at most 0.3 s; PostgreSQL ready
#: within 1.3x the time to the image's own final "ready to accept connections" line.
TARGETS: dict[str, float] = {"nats_median_ms": 300, "postgres_ratio_to_first_ready_line": 1.3}
WARMUP_PAIRS = 1
READY_LINE = "ready to accept connections"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- testcontainers, changed only to run with host networking ----------------------------------


def _host_network(container: Any) -> None:
    container.ports.clear()  # docker-py refuses published ports with network_mode host
    container.with_kwargs(network="host")


def tc_nats(image: str, material: NatsMaterial, port: int, monitor_port: int) -> Any:
    from testcontainers.community.nats import NatsContainer

    from pytest_aegis.backends.docker.nats import CONF, STORE, container_material

    container = NatsContainer(image, jetstream=True)
    _host_network(container)
    if material.spec.tls or material.spec.auth != "none":
        inner, files = container_material(material)
        text = render(inner, name="tc", store_dir=Path(STORE), port=port, monitor_port=monitor_port)
        for spec in files:
            container.with_copy_into_container(spec.content, spec.path, spec.mode)
        container.with_copy_into_container(text.encode(), CONF, 0o600)
        container.with_command(["-c", CONF])
    else:
        container.with_command(["-a", "127.0.0.1", "-p", str(port), "-m", str(monitor_port), "-js"])
    return container


def tc_postgres(image: str, port: int) -> Any:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(image, driver=None)
    _host_network(container)
    container.with_env("PGPORT", str(port))
    container.with_command(["postgres", "-c", "listen_addresses=127.0.0.1"])
    return container


# -- one repetition each ----------------------------------------------------------------------------


async def aegis_nats_once(backend: Any, session: SessionState, ca: AegisCA, spec: NatsSpec, index: int
                          ) -> tuple[float, NatsMaterial]:  # fmt: skip
    name = f"bench-{index}"
    started = time.perf_counter()
    directory = session.new_dir(f"nats-{name}")
    material = prepare(spec, directory / "material", ca if spec.tls else None)
    runtime = backend.start_nats(material, name=name, directory=directory)
    try:
        nc = await NatsServer(runtime, material).connect()
        elapsed = time.perf_counter() - started
        await nc.close()
    finally:
        runtime.remove()
    return elapsed, material


async def tc_nats_once(image: str, material: NatsMaterial) -> float:
    from pytest_aegis.ports import lease_port

    port, monitor_port = lease_port(), lease_port()
    started = time.perf_counter()
    container = tc_nats(image, material, port, monitor_port)
    try:
        container.start()
        nc = await nats.connect(**bare_connect_kwargs(material, port))
        elapsed = time.perf_counter() - started
        await nc.close()
    finally:
        container.stop()
    return elapsed


def _ready_lines_s(container: Any, started_wall: float) -> tuple[float, float]:
    """Seconds from ``started_wall`` to the first and the last "ready to accept connections" lines."""
    stamps = [
        line.split(" ", 1)[0]
        for line in container.logs(timestamps=True).decode("utf-8", "replace").splitlines()
        if READY_LINE in line
    ]
    if not stamps:
        raise RuntimeError("no 'ready to accept connections' line in the container's log")
    return _since(stamps[0], started_wall), _since(stamps[-1], started_wall)


def _since(stamp: str, started_wall: float) -> float:
    # RFC 3339 with nanoseconds: keep microseconds for datetime
    head, _, frac = stamp.rstrip("Z").partition(".")
    when = dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    return when.timestamp() - started_wall


def aegis_pg_once(backend: Any, engine: Any, index: int) -> tuple[float, tuple[float, float]]:
    started_wall, started = time.time(), time.perf_counter()
    server = backend.start_postgres(name=f"bench-{index}")
    try:
        psycopg.connect(server.dsn, connect_timeout=10).close()
        elapsed = time.perf_counter() - started
        lines = _ready_lines_s(engine.client.containers.get(server.container_name), started_wall)
    finally:
        server.remove()
    return elapsed, lines


def tc_pg_once(image: str) -> tuple[float, tuple[float, float]]:
    """One reference start.  Like the docker backend's own start (and its clock), a server that
    lost its free port to another process before binding it is retried on a new port
    (:func:`~pytest_aegis.ports.start_on_free_port`); testcontainers only notices after its 120 s
    wait, which the figure then includes.  Any failure carries the container's log."""
    from pytest_aegis.ports import start_on_free_port

    started_wall, started = time.time(), time.perf_counter()

    def start(port: int) -> tuple[float, tuple[float, float]]:
        container = tc_postgres(image, port)
        try:
            try:
                container.start()
            except Exception as exc:
                log = container.get_wrapped_container().logs(tail=20).decode("utf-8", "replace")
                raise RuntimeError(
                    f"PostgresContainer on port {port} did not start: {exc}\nits log:\n{log}"
                ) from exc
            dsn = (
                f"postgresql://{container.username}:{container.password}@127.0.0.1:{port}/{container.dbname}"
            )
            psycopg.connect(dsn, connect_timeout=10).close()
            elapsed = time.perf_counter() - started
            return elapsed, _ready_lines_s(container.get_wrapped_container(), started_wall)
        finally:
            container.stop()

    return start_on_free_port(start)


# -- the run ------------------------------------------------------------------------------------------


def _pair_result(aegis: list[float], reference: list[float]) -> dict[str, Any]:
    return {
        "aegis": stats.summarize(aegis),
        "testcontainers": stats.summarize(reference),
        "ratio_aegis_to_testcontainers": stats.ratio(stats.median(aegis), stats.median(reference)),
        "samples_ms": {
            "aegis": [round(stats.to_ms(v), stats.DIGITS) for v in aegis],
            "testcontainers": [round(stats.to_ms(v), stats.DIGITS) for v in reference],
        },
    }


async def _measure_nats(backend: Any, session: SessionState, ca: AegisCA, image: str, reps: int,
                        progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {}
    counter = 0
    for key, spec in NATS_CONFIGS.items():
        ours: list[float] = []
        theirs: list[float] = []
        for index in range(WARMUP_PAIRS + reps):
            counter += 1
            aegis_s, material = await aegis_nats_once(backend, session, ca, spec, counter)
            tc_s = await tc_nats_once(image, material)
            if index >= WARMUP_PAIRS:
                ours.append(aegis_s)
                theirs.append(tc_s)
        result = results[key] = {"label": spec.label, **_pair_result(ours, theirs)}
        median_ms = result["aegis"]["median_ms"]
        result["target_checks"] = {"nats_median_ms": float(median_ms) <= TARGETS["nats_median_ms"]}
        progress(
            f"[{NAME}] {key}: aegis median {median_ms:.1f} ms, "
            f"testcontainers median {result['testcontainers']['median_ms']:.1f} ms"
        )
    return results


def _measure_postgres(backend: Any, engine: Any, image: str, reps: int,
                      progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    ours: list[float] = []
    theirs: list[float] = []
    lines: dict[str, dict[str, list[float]]] = {
        which: {"aegis": [], "testcontainers": []} for which in ("first", "final")
    }
    for index in range(WARMUP_PAIRS + reps):
        aegis_s, aegis_lines = aegis_pg_once(backend, engine, index)
        tc_s, tc_lines = tc_pg_once(image)
        if index >= WARMUP_PAIRS:
            ours.append(aegis_s)
            theirs.append(tc_s)
            for position, which in enumerate(("first", "final")):
                lines[which]["aegis"].append(aegis_lines[position])
                lines[which]["testcontainers"].append(tc_lines[position])
    result = _pair_result(ours, theirs)
    for which, per_contender in lines.items():
        result[f"{which}_ready_line"] = {name: stats.summarize(v) for name, v in per_contender.items()}
        for name, samples in (("aegis", ours), ("testcontainers", theirs)):
            result[f"ratio_{name}_to_its_{which}_ready_line"] = stats.paired_ratio_median(
                samples, per_contender[name]
            )
    result["target_checks"] = {
        "postgres_ratio_to_first_ready_line": result["ratio_aegis_to_its_first_ready_line"]
        <= TARGETS["postgres_ratio_to_first_ready_line"]
    }
    progress(
        f"[{NAME}] postgres: aegis median {result['aegis']['median_ms']:.0f} ms "
        f"(its ready lines: first {result['first_ready_line']['aegis']['median_ms']:.0f} ms, "
        f"final {result['final_ready_line']['aegis']['median_ms']:.0f} ms), "
        f"testcontainers median {result['testcontainers']['median_ms']:.0f} ms"
    )
    return result


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Measure every configuration ``reps`` times per contender; return the suite's results."""
    from pytest_aegis.backends.docker.backend import DockerBackend
    from pytest_aegis.backends.docker.engine import Engine
    from pytest_aegis.errors import BackendUnavailable

    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    noise = _DropSslEofNoise()
    logging.getLogger("asyncio").addFilter(noise)
    try:
        engine = Engine.connect()
    except BackendUnavailable as exc:  # a machine without Docker: say so, not fail every bench run
        return {"suite": NAME, "skipped": f"no Docker engine: {str(exc).splitlines()[0]}"}
    session = SessionState()
    config = AegisConfig(backend="docker", docker_network="host")
    backend = DockerBackend(config, session, engine=engine)
    try:
        ca = AegisCA(session.new_dir("ca"))
        configs = asyncio.run(_measure_nats(backend, session, ca, config.docker_nats_image, reps, _progress))
        configs["postgres"] = _measure_postgres(backend, engine, config.docker_pg_image, reps, _progress)
        checks = {key: value["target_checks"] for key, value in configs.items()}
        return {
            "suite": NAME,
            "what": "container time-to-ready: from the start of creating the container until the first "
            "client connection completes",
            "engine": {"version": engine.version, "address": engine.address, "network": "host"},
            "images": {"nats": config.docker_nats_image, "postgres": config.docker_pg_image},
            "reps": reps,
            "quick": quick,
            "warmup_pairs": WARMUP_PAIRS,
            "order": "interleaved per configuration: aegis, testcontainers, aegis, ...",
            "contenders": {
                "aegis": "DockerBackend.start_nats / start_postgres (readiness from the container's own "
                "output, followed as it is written), then the first client connection",
                "testcontainers": "NatsContainer / PostgresContainer with their own readiness checks "
                "(log poll / psql exec every TC_POOLING_INTERVAL, default 1 s), changed only for host "
                "networking (no exposed ports, network host, ports on the command line or PGPORT, URL "
                "built with 127.0.0.1); the TLS NATS gets the aegis rep's config and certificates",
            },
            "notes": [
                "removal of the containers is outside the timed region",
                "the first pair per configuration is a discarded warm-up",
                "first_ready_line / final_ready_line: from the start to the image's first / last "
                "'ready to accept connections' line by the engine's log timestamps (the first is the "
                "entrypoint's temporary server without TCP); the PostgreSQL target is aegis / first "
                "line, paired",
            ],
            "targets": dict(TARGETS),
            "configs": configs,
            "meets_targets": all(all(check.values()) for check in checks.values()),
        }
    finally:
        backend.close()
        session.close()
        logging.getLogger("asyncio").removeFilter(noise)
