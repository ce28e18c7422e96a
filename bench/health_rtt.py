"""Suite ``health``: NATS request/reply round trip to the reference service's health responder,
against a bare nats-py responder on the same server.

One nats-server with the default secured spec (``NatsSpec()``: TLS + user/password + JetStream) is
started through :class:`~pytest_aegis.natsd.pool.NatsPool`; two contenders answer on it:

``service``
    The reference service (``python -m aegis_service``) started with
    :class:`~pytest_aegis.app.process.AppProcess`, addressed on ``health.check.<instanceId>`` (every instance
    also subscribes there, so exactly one responder replies).  It builds its health document from
    memory and ``json.dumps`` it per request.

``bare``
    The reference: a separate Python process (``sys.executable -c``) running a minimal nats-py
    responder on ``bench.bare`` that ``json.dumps`` a health-like document of about the same size per
    request.  It connects with the same TLS context (session CA) and user/password, taken from
    :meth:`NatsServer.env`, and prints a ready line after subscribing and flushing.

From one client connection in the bench process, each round trip is one
``await nc.request(subject, b"{}", timeout=1)``, timed with :func:`time.perf_counter`.  After a
warm-up, the contenders are measured in interleaved blocks (service, bare, bare, service, ...), so
drift on the machine hits both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from bench import stats
from bench.nats_ready import _DropSslEofNoise
from bench.procs import read_until, terminate
from pytest_aegis.app.declared import installed_apps
from pytest_aegis.app.process import AppProcess
from pytest_aegis.app.spec import DEFAULT_APP
from pytest_aegis.backends.local.backend import LocalBackend
from pytest_aegis.certs import AegisCA
from pytest_aegis.config import AegisConfig
from pytest_aegis.natsd.pool import NatsPool
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState

NAME = "health_rtt"
#: The issue's Done-when: the service's health round trip p99 within 2 ms, at most 2x a bare responder.
TARGETS: dict[str, float] = {"service_p99_ms": 2.0, "p99_ratio_max": 2.0}
SERVICE_NAME = "bench-svc"
BARE_SUBJECT = "bench.bare"
REQUEST_TIMEOUT = 1.0
WARMUP = 50
BLOCKS = 10
BLOCK_SIZE = 200
QUICK_BLOCKS = 4
QUICK_BLOCK_SIZE = 50
READY_TIMEOUT = 30.0

BARE_READY = "AEGIS-BENCH BARE READY"
#: The bare responder.  Only the environment of :meth:`NatsServer.env` configures it; its document has
#: the shape (and about the size) of the service's health report.
BARE_SCRIPT = f"""
import asyncio, json, os, signal, ssl, time
import nats

async def main():
    kwargs = {{"servers": [os.environ["AEGIS_NATS_URL"]], "name": "aegis-bench:bare-responder"}}
    if os.environ.get("AEGIS_NATS_TLS_CA"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(os.environ["AEGIS_NATS_TLS_CA"])
        kwargs["tls"] = context
    if os.environ.get("AEGIS_NATS_USER"):
        kwargs["user"] = os.environ["AEGIS_NATS_USER"]
        kwargs["password"] = os.environ["AEGIS_NATS_PASSWORD"]
    nc = await nats.connect(**kwargs)
    url = os.environ["AEGIS_NATS_URL"]
    started = time.monotonic()

    async def handle(msg):
        if not msg.reply:
            return
        doc = {{
            "service": "bench-bare", "instanceId": "0123456789abcdef", "version": "0.1.0",
            "status": "healthy", "nats": {{"connected": True, "url": url}},
            "uptimeSeconds": round(time.monotonic() - started, 3),
            "checks": {{
                "nats": {{"status": "healthy", "detail": "connected to " + url}},
                "kvRegistry": {{"status": "healthy",
                               "detail": "bench-bare.0123456789abcdef registered (revision 2), "
                                         "last heartbeat 0.0s ago"}},
                "publishBreaker": {{"status": "healthy", "detail": "closed"}},
            }},
        }}
        await msg.respond(json.dumps(doc, separators=(",", ":")).encode())

    await nc.subscribe({BARE_SUBJECT!r}, cb=handle)
    await nc.flush(timeout=5)
    print({BARE_READY!r}, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()

asyncio.run(main())
"""


# -- the shared set-up: one secured server and the reference service ------------------------------------


@dataclass
class ServiceStack:
    """What :func:`service_stack` started: the session, the server and the service."""

    session: SessionState
    backend: LocalBackend
    server: NatsServer
    app: AppProcess
    setup_ms: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def service_stack(
    service_name: str = SERVICE_NAME, *, prepare: Callable[[LocalBackend], Mapping[str, str]] | None = None
) -> Iterator[ServiceStack]:
    """One ``NatsSpec()`` server (TLS + user/password + JetStream) and the reference service on it;
    ``prepare(backend)`` (e.g. a database) runs before the service starts and returns more of its
    environment.  Everything is stopped (and the session directory removed) on exit, in reverse."""
    with contextlib.ExitStack() as cleanup:
        noise = _DropSslEofNoise()
        logging.getLogger("asyncio").addFilter(noise)
        cleanup.callback(logging.getLogger("asyncio").removeFilter, noise)
        session = SessionState()
        cleanup.callback(session.close)
        backend = LocalBackend(AegisConfig(), session)
        cleanup.callback(backend.close)
        ca = AegisCA(session.new_dir("ca"))
        pool = NatsPool(backend, session, lambda: ca)
        cleanup.callback(pool.close)
        started = time.perf_counter()
        server = pool.start(NatsSpec())
        server_ms = stats.to_ms(time.perf_counter() - started)
        env = dict(prepare(backend)) if prepare is not None else None
        started = time.perf_counter()
        spec = installed_apps(None)[DEFAULT_APP]  # the reference service, as it declares itself
        app = AppProcess(spec, server, session=session, service_name=service_name, env=env).start()
        cleanup.callback(app.stop)
        app_ms = stats.to_ms(time.perf_counter() - started)
        yield ServiceStack(
            session,
            backend,
            server,
            app,
            {"nats_server_ms": round(server_ms, stats.DIGITS), "service_ms": round(app_ms, stats.DIGITS)},
        )


# -- the bare responder ----------------------------------------------------------------------------------


def start_bare(server: NatsServer, log_path: Path, timeout: float = READY_TIMEOUT) -> subprocess.Popen[bytes]:
    """Spawn the bare responder and return once it printed its ready line (no sleeps)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", BARE_SCRIPT],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **server.env(), "PYTHONUNBUFFERED": "1"},
        )
    try:
        _wait_ready_line(proc, timeout, log_path)
    except BaseException:
        terminate(proc)
        raise
    return proc


def _wait_ready_line(proc: subprocess.Popen[bytes], timeout: float, log_path: Path) -> None:
    assert proc.stdout is not None
    ready = BARE_READY.encode()
    read_until(
        proc, proc.stdout, lambda line: ready in line, timeout, "bare responder", lambda _: _tail(log_path)
    )


def _tail(path: Path, count: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join("  " + line for line in path.read_text(errors="replace").splitlines()[-count:])
    return "  (no log)"


# -- the measurement -------------------------------------------------------------------------------------


@dataclass
class _Contender:
    subject: str
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reply_bytes: int = 0
    reply: dict[str, Any] = field(default_factory=dict)


async def _round_trips(nc: Client, contender: _Contender, count: int, *, keep: bool) -> None:
    request = nc.request
    subject = contender.subject
    for _ in range(count):
        started = time.perf_counter()
        try:
            await request(subject, b"{}", timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            if keep:
                contender.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - started
        if keep:
            contender.samples.append(elapsed)


async def _measure(
    server: NatsServer,
    contenders: dict[str, _Contender],
    blocks: int,
    block_size: int,
    progress: Callable[[str], None],
) -> None:
    nc = await server.connect(name="aegis-bench:health-client")
    try:
        for contender in contenders.values():
            reply = await nc.request(contender.subject, b"{}", timeout=REQUEST_TIMEOUT)
            contender.reply_bytes = len(reply.data)
            contender.reply = json.loads(reply.data)
        for contender in contenders.values():
            await _round_trips(nc, contender, WARMUP, keep=False)
        order = list(contenders)
        for block in range(blocks):
            for name in order if block % 2 == 0 else reversed(order):
                await _round_trips(nc, contenders[name], block_size, keep=True)
            medians = ", ".join(
                f"{name} {stats.to_ms(stats.median(c.samples[-block_size:])):.3f} ms"
                for name, c in contenders.items()
            )
            progress(f"[{NAME}] block {block + 1}/{blocks} medians: {medians}")
    finally:
        await nc.close()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _result(contenders: dict[str, _Contender]) -> dict[str, Any]:
    summaries = {name: stats.summarize(c.samples) for name, c in contenders.items()}
    service, bare = contenders["service"], contenders["bare"]
    p99_ratio = stats.ratio(stats.percentile(service.samples, 99), stats.percentile(bare.samples, 99))
    median_ratio = stats.ratio(stats.median(service.samples), stats.median(bare.samples))
    errors = {name: len(c.errors) for name, c in contenders.items()}
    checks = {
        "service_p99_ms": float(summaries["service"]["p99_ms"]) <= TARGETS["service_p99_ms"],
        "p99_ratio_max": p99_ratio <= TARGETS["p99_ratio_max"],
        "no_errors": not any(errors.values()),
    }
    return {
        **summaries,
        "p99_ratio": p99_ratio,
        "median_ratio": median_ratio,
        "errors": errors,
        "error_samples": {name: c.errors[:5] for name, c in contenders.items() if c.errors},
        "reply_bytes": {name: c.reply_bytes for name, c in contenders.items()},
        "service_status": service.reply.get("status"),
        "targets": dict(TARGETS),
        "target_checks": checks,
        "meets_targets": all(checks.values()),
    }


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Measure the health round trip of the service and of the bare responder; return the results.

    The sizes are fixed per mode (``quick`` or not); ``reps`` is recorded but does not scale them.
    """
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    blocks, block_size = (QUICK_BLOCKS, QUICK_BLOCK_SIZE) if quick else (BLOCKS, BLOCK_SIZE)
    with service_stack() as stack:
        bare = start_bare(stack.server, stack.session.new_dir("bare-responder") / "bare.log")
        try:
            contenders = {
                "service": _Contender(f"{stack.app.spec.health_subject}.{stack.app.instance_id}"),
                "bare": _Contender(BARE_SUBJECT),
            }
            started = time.perf_counter()
            asyncio.run(_measure(stack.server, contenders, blocks, block_size, _progress))
            measure_s = time.perf_counter() - started
        finally:
            terminate(bare)
        return {
            "suite": NAME,
            "what": "NATS request/reply round trip (await nc.request(subject, b'{}', timeout=1)) from one "
            "client connection, sequential",
            "nats_server": {"version": stack.backend.nats_version, "spec": stack.server.spec.label},
            "reps": reps,
            "quick": quick,
            "requests_per_contender": blocks * block_size,
            "warmup_per_contender": WARMUP,
            "blocks": blocks,
            "block_size": block_size,
            "order": "after the warm-up, blocks alternate service, bare / bare, service, ...",
            "subjects": {name: c.subject for name, c in contenders.items()},
            "contenders": {
                "service": "python -m aegis_service via AppProcess(<its declared spec>, server, service_name="
                f"{SERVICE_NAME!r}), addressed on <healthSubject>.<instanceId>",
                "bare": "sys.executable -c <minimal nats-py responder>: same TLS (session CA) and "
                "user/password from server.env(), json.dumps of a health-like document per request",
            },
            "notes": [
                "sizes are fixed per mode (quick or not); --reps does not scale this suite",
                "failed requests (timeouts, no responders) count as errors and are not in the samples",
                "p99_ratio and median_ratio are service / bare",
                "setup_ms: nats-server start and service start (until healthy), for reference",
            ],
            "setup_ms": stack.setup_ms,
            "measure_s": round(measure_s, stats.DIGITS),
            **_result(contenders),
        }
