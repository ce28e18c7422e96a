"""Suite ``registry``: the reference service's registry HTTP API under 100 concurrent clients.

The set-up is the ``health`` suite's (:func:`~bench.health_rtt.service_stack`): one
``NatsSpec()`` nats-server (TLS + user/password + JetStream) and the reference service on it.

100 clients (asyncio tasks, one keep-alive connection each) each run CRUD cycles on their own
``serviceName``, all at once, with no think time (a closed loop):

``create``  ``POST /api/services`` (201, ``ETag``)
``read``    ``GET /api/services/<name>`` (200, the same ``ETag``)
``update``  ``PUT /api/services/<name>`` with ``If-Match`` = the ``ETag`` of the create (200, new ``ETag``)
``delete``  ``DELETE /api/services/<name>`` with ``If-Match`` = the ``ETag`` of the update (204)

(the list endpoint is left out: it reads every key, O(n) per call).  Each request is timed with
:func:`time.perf_counter` from sending until the whole response body is read.  Any other status, a
missing or unexpected ``ETag``, or an exception is an error; the rest of that cycle is skipped.
A client keeps its name across cycles, so from the second cycle on ``create`` re-creates a deleted
key (nats-py's ``KeyValue.create``: a failed create, a read of the delete marker, an update: three
JetStream requests instead of one).

Two load generators run one after the other, each with its own names:

``raw`` (the measurement, judged against the targets)
    A minimal HTTP/1.1 keep-alive client on asyncio streams (~0.1 ms of CPU per request), so that
    the load generator, sharing the machine with the service, is not what is measured.

``httpx`` (a reference: what a Python test suite using httpx sees)
    One :class:`httpx.AsyncClient` per client (``max_connections=1``).  httpx costs ~1-1.5 ms of CPU
    per request in this process, so at 100 concurrent clients the bench process, not the service,
    is the bottleneck; one client shared by all tasks is worse still (its pool's bookkeeping grows
    with the number of connections).

The CPU time the service process and the bench process used during each run is recorded (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench import stats
from bench.health_rtt import service_stack
from bench.http_clients import Client, HttpxClient, JsonBody, RawClient, Reply
from bench.procs import process_cpu_s

NAME = "registry_load"
OPERATIONS = ("create", "read", "update", "delete")
EXPECTED: dict[str, int] = {"create": 201, "read": 200, "update": 200, "delete": 204}
#: The issue's Done-when: p99 within 50 ms under 100 concurrent clients, no errors.
TARGETS: dict[str, float] = {"p99_ms": 50, "errors": 0}
CLIENTS = 100
CYCLES = 20  # 8,000 requests: enough samples (80 above p99) for a stable p99
QUICK_CYCLES = 1
GENERATORS = ("raw", "httpx")
PRIMARY = "raw"


class CycleError(Exception):
    """A request of a cycle did not get the expected answer."""


# -- the load ---------------------------------------------------------------------------------------------


@dataclass
class _Recorder:
    samples: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: {op: Counter() for op in OPERATIONS})
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def error(self, operation: str, message: str) -> None:
        self.errors[operation] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{operation}: {message}")


async def _timed(
    recorder: _Recorder,
    client: Client,
    operation: str,
    method: str,
    path: str,
    body: JsonBody | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request; its latency goes to ``recorder`` when it got the expected status."""
    started = time.perf_counter()
    try:
        reply = await client.request(method, path, body, headers)
    except Exception as exc:
        recorder.statuses[operation][type(exc).__name__] += 1
        recorder.error(operation, f"{method} {path}: {type(exc).__name__}: {exc}")
        raise CycleError(operation) from exc
    elapsed = time.perf_counter() - started
    recorder.statuses[operation][str(reply.status)] += 1
    if reply.status != EXPECTED[operation]:
        recorder.error(operation, f"{method} {path}: HTTP {reply.status} {reply.body[:200]!r}")
        raise CycleError(operation)
    recorder.samples[operation].append(elapsed)
    return reply


def _body(cycle: int, **extra: str) -> JsonBody:
    return {
        "owner": "bench",
        "description": f"registry load cycle {cycle}",
        "version": f"1.{cycle}.0",
        **extra,
    }


async def _cycle(recorder: _Recorder, client: Client, name: str, cycle: int) -> None:
    path = f"/api/services/{name}"
    created = await _timed(
        recorder, client, "create", "POST", "/api/services", _body(cycle, serviceName=name)
    )
    if not created.etag:
        recorder.error("create", "no ETag header")
        raise CycleError("create")
    read = await _timed(recorder, client, "read", "GET", path)
    if read.etag != created.etag:
        recorder.error("read", f"ETag {read.etag!r}, expected {created.etag!r} from the create")
        raise CycleError("read")
    updated = await _timed(
        recorder, client, "update", "PUT", path, _body(cycle + 1), {"If-Match": created.etag}
    )
    if not updated.etag:
        recorder.error("update", "no ETag header")
        raise CycleError("update")
    await _timed(recorder, client, "delete", "DELETE", path, headers={"If-Match": updated.etag})


async def _client_task(recorder: _Recorder, client: Client, name: str, cycles: int) -> None:
    for cycle in range(cycles):
        try:
            await _cycle(recorder, client, name, cycle)
        except CycleError:
            # Best effort, not measured: leave the name free for the next cycle.
            with contextlib.suppress(Exception):  # the cycle's error is recorded already
                await client.request("DELETE", f"/api/services/{name}")


@dataclass
class _Run:
    recorder: _Recorder
    elapsed_s: float
    service_cpu_s: float | None
    bench_cpu_s: float


async def _load(
    make_client: Callable[[], Client],
    generator: str,
    clients: int,
    cycles: int,
    service_pid: int | None,
    progress: Callable[[str], None],
) -> _Run:
    recorder = _Recorder()
    token = secrets.token_hex(3)
    pool = [make_client() for _ in range(clients)]
    try:
        # Warm-up, not measured: open every connection (one concurrent GET /healthz per client) and run
        # one CRUD cycle through every code path of the service.
        warm = await asyncio.gather(*(client.request("GET", "/healthz") for client in pool))
        if bad := [reply.status for reply in warm if reply.status != 200]:
            raise RuntimeError(f"warm-up GET /healthz failed: {bad[:5]}")
        await _cycle(_Recorder(), pool[0], f"bench-{generator}-{token}-warmup", 0)

        service_cpu = process_cpu_s(service_pid)
        bench_cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _client_task(recorder, client, f"bench-{generator}-{token}-{index:03d}", cycles)
                for index, client in enumerate(pool)
            )
        )
        elapsed = time.perf_counter() - started
        bench_cpu = time.process_time() - bench_cpu
        service_cpu_end = process_cpu_s(service_pid)
    finally:
        await asyncio.gather(*(client.close() for client in pool), return_exceptions=True)
    service_cpu_s = None if service_cpu is None or service_cpu_end is None else service_cpu_end - service_cpu
    total = sum(len(values) for values in recorder.samples.values()) + sum(recorder.errors.values())
    progress(
        f"[{NAME}] {generator}: {total} requests in {elapsed:.2f}s, {sum(recorder.errors.values())} errors"
    )
    return _Run(recorder, elapsed, service_cpu_s, bench_cpu)


async def _measure(
    base_url: str, clients: int, cycles: int, service_pid: int | None, progress: Callable[[str], None]
) -> dict[str, _Run]:
    url = urlsplit(base_url)
    if url.scheme != "http" or url.hostname is None or url.port is None:
        raise ValueError(f"expected http://host:port, got {base_url!r}")
    host, port = url.hostname, url.port
    tls = ssl.create_default_context()
    makers: dict[str, Callable[[], Client]] = {
        "raw": lambda: RawClient(host, port),
        "httpx": lambda: HttpxClient(base_url, tls),
    }
    return {
        generator: await _load(makers[generator], generator, clients, cycles, service_pid, progress)
        for generator in GENERATORS
    }


# -- the report ---------------------------------------------------------------------------------------------


def _summary(samples: list[float]) -> dict[str, float | int] | None:
    return stats.summarize(samples) if samples else None


def _run_result(run: _Run) -> dict[str, Any]:
    recorder = run.recorder
    samples = [value for op in OPERATIONS for value in recorder.samples[op]]
    errors = sum(recorder.errors.values())
    requests = len(samples) + errors

    def per_request_ms(seconds: float | None) -> float | None:
        if seconds is None or not requests:
            return None
        return round(stats.to_ms(seconds) / requests, stats.DIGITS)

    return {
        "requests": requests,
        "errors": errors,
        "errors_by_operation": {op: recorder.errors[op] for op in OPERATIONS},
        "error_samples": recorder.error_samples,
        "statuses": {op: dict(recorder.statuses[op]) for op in OPERATIONS},
        "elapsed_s": round(run.elapsed_s, stats.DIGITS),
        "throughput_rps": round(requests / run.elapsed_s, 1) if run.elapsed_s > 0 else None,
        "overall": _summary(samples),
        "operations": {op: _summary(recorder.samples[op]) for op in OPERATIONS},
        "cpu": {
            "service_s": None if run.service_cpu_s is None else round(run.service_cpu_s, stats.DIGITS),
            "bench_s": round(run.bench_cpu_s, stats.DIGITS),
            "service_ms_per_request": per_request_ms(run.service_cpu_s),
            "bench_ms_per_request": per_request_ms(run.bench_cpu_s),
        },
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Run the concurrent CRUD load with each load generator; return the suite's results.

    The sizes are fixed per mode (``quick`` or not); ``reps`` is recorded but does not scale them.
    """
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    cycles = QUICK_CYCLES if quick else CYCLES
    with service_stack() as stack:
        if not stack.app.http_url:
            raise RuntimeError("the reference service announced no httpUrl")
        runs = asyncio.run(_measure(stack.app.http_url, CLIENTS, cycles, stack.app.pid, _progress))
        results = {generator: _run_result(value) for generator, value in runs.items()}
        primary = results[PRIMARY]
        overall = primary["overall"]
        checks = {
            "p99_ms": overall is not None and float(overall["p99_ms"]) <= TARGETS["p99_ms"],
            "errors": primary["errors"] <= TARGETS["errors"],
        }
        return {
            "suite": NAME,
            "what": "registry HTTP API latency under concurrent CRUD cycles (POST, GET, PUT If-Match, "
            "DELETE If-Match), per request from sending until the body is read",
            "nats_server": {"version": stack.backend.nats_version, "spec": stack.server.spec.label},
            "reps": reps,
            "quick": quick,
            "clients": CLIENTS,
            "cycles_per_client": cycles,
            "requests_planned": CLIENTS * cycles * len(OPERATIONS),
            "load_generator": PRIMARY,
            **primary,
            "httpx_reference": results["httpx"],
            "load_generators": {
                "raw": "minimal HTTP/1.1 keep-alive client on asyncio streams, one connection per client",
                "httpx": "one httpx.AsyncClient per client, Limits(max_connections=1)",
            },
            "notes": [
                "top-level results are the raw load generator's; httpx_reference is the same load through "
                "httpx, run after it against the same service",
                "sizes are fixed per mode (quick or not); --reps does not scale this suite",
                "closed loop without think time: mean latency ~= clients / throughput (Little's law), so "
                "with 100 clients p99 <= 50 ms needs well over 2000 requests/s",
                "median_ms is the p50; latencies include the client side in this process",
                "warm-up (not measured): one concurrent GET /healthz per client to open the connections, "
                "then one CRUD cycle",
                "an error skips the rest of its cycle; errored requests are not in the latency samples",
                "cpu: CPU time of the service process (/proc) and of the bench process during the run",
                "setup_ms: nats-server start and service start (until healthy), for reference",
            ],
            "setup_ms": stack.setup_ms,
            "targets": dict(TARGETS),
            "target_checks": checks,
            "meets_targets": all(checks.values()),
        }
