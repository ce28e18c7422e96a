"""Suite ``nats``: time-to-ready of a nats-server, the plugin's path against a bare Popen.

*Time-to-ready* runs from the start of spawning until the first ``nats.connect``
completes.  For each configuration (plain, TLS + user/password, mTLS; all with
JetStream) two contenders are measured interleaved (A, B, A, B, ...) in one run:

``aegis``
    The plugin's own path: ``NatsPool.start(spec)`` (makes the material, writes
    the config, spawns with PR_SET_PDEATHSIG (via setpriv), waits for the
    "Server is ready" log line) and then ``await server.connect()``.

``bare_popen``
    The reference, a hand-written fixture at its best: the same binary and the
    same config content (``natsd.conf.render`` of the material the aegis rep
    just made, in its own directory with its own JetStream store), written to
    disk, ``subprocess.Popen([bin, "-c", conf], stderr=PIPE)``, stderr read
    until "Server is ready" (the port from "Listening for client connections
    on"), then the same ``nats.connect`` with the same credentials and TLS
    context.

Shutting down (client close, server stop) is outside the timed region.  The
session state and the session CA are made once per run, as once per pytest
session, so they are not part of the per-server time.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from bench import stats
from bench.procs import BenchError, read_until, terminate
from pytest_aegis.backends.local.backend import LocalBackend
from pytest_aegis.certs import AegisCA
from pytest_aegis.config import AegisConfig
from pytest_aegis.natsd.conf import render
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.pool import NatsPool
from pytest_aegis.natsd.server import CLIENT_DEFAULTS
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.ports import LOOPBACK
from pytest_aegis.session import SessionState

NAME = "nats_ready"
CONFIGS: dict[str, NatsSpec] = {
    "plain_js": NatsSpec(auth="none", tls=False),
    "tls_userpass_js": NatsSpec(),
    "mtls_userpass_js": NatsSpec(mtls=True),
}
#: The issue's Done-when: the default secured server (TLS + user/password +
#: JetStream) ready in a median of at most 15 ms, at most 1.5x a bare Popen.
TARGETS: dict[str, float] = {"tls_userpass_js_median_ms": 15, "ratio_max": 1.5}
TARGET_CONFIG = "tls_userpass_js"
WARMUP_PAIRS = 1
READY_TIMEOUT = 20.0

_READY = b"Server is ready"
_CLIENT_PORT = re.compile(rb"Listening for client connections on (\S+):(\d+)")


class _DropSslEofNoise(logging.Filter):
    """asyncio warns on every TLS close by nats-py ("returning true from eof_received() has
    no effect when using ssl"); harmless, and a line per rep would drown the progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


# -- the bare reference --------------------------------------------------------


def _wait_bare_ready(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Read ``proc``'s stderr until "Server is ready"; return the client port it logged."""
    assert proc.stderr is not None
    lines = read_until(proc, proc.stderr, lambda line: _READY in line, timeout, "bare nats-server", _tail)
    for line in lines:
        if match := _CLIENT_PORT.search(line):
            return int(match.group(2))
    raise BenchError(f"bare nats-server ready but logged no client port:\n{_tail(lines)}")


def _tail(lines: list[bytes], count: int = 20) -> str:
    return "\n".join("  " + line.decode("utf-8", "replace") for line in lines[-count:])


def bare_connect_kwargs(material: NatsMaterial, port: int) -> dict[str, Any]:
    """The ``nats.connect`` keywords the plugin's handle would use, for a bare server on ``port``."""
    scheme = "tls" if material.spec.tls else "nats"
    kwargs: dict[str, Any] = {
        "servers": [f"{scheme}://{LOOPBACK}:{port}"],
        "name": "aegis-bench:bare",
        **CLIENT_DEFAULTS,
    }
    if material.client_tls is not None:
        kwargs["tls"] = material.client_tls
    kwargs.update(material.default.connect_kwargs)
    return kwargs


async def bare_once(binary: Path, material: NatsMaterial, directory: Path, name: str) -> float:
    """One bare-Popen time-to-ready, in seconds."""
    text = render(material, name=name, store_dir=directory / "jetstream")
    conf = directory / "nats-server.conf"
    started = time.perf_counter()
    conf.write_text(text)
    proc = subprocess.Popen(
        [str(binary), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port = _wait_bare_ready(proc, READY_TIMEOUT)
        nc = await nats.connect(**bare_connect_kwargs(material, port))
        elapsed = time.perf_counter() - started
        await nc.close()
    finally:
        terminate(proc)
    return elapsed


# -- the plugin's path -----------------------------------------------------------


async def aegis_once(pool: NatsPool, spec: NatsSpec) -> tuple[float, NatsMaterial]:
    """One time-to-ready through ``NatsPool.start``, in seconds, and the material it made."""
    started = time.perf_counter()
    server = pool.start(spec)
    try:
        nc = await server.connect()
        elapsed = time.perf_counter() - started
        await nc.close()
    finally:
        server.stop()
    return elapsed, server.material


# -- the run -----------------------------------------------------------------------


@dataclass
class _Samples:
    aegis: list[float] = field(default_factory=list)
    bare_popen: list[float] = field(default_factory=list)


async def _measure(
    pool: NatsPool, session: SessionState, binary: Path, reps: int, progress: Callable[[str], None]
) -> dict[str, _Samples]:
    results: dict[str, _Samples] = {}
    for key, spec in CONFIGS.items():
        samples = results[key] = _Samples()
        for index in range(WARMUP_PAIRS + reps):
            aegis_s, material = await aegis_once(pool, spec)
            bare_dir = session.new_dir(f"bare-{key}-{index}")
            bare_s = await bare_once(binary, material, bare_dir, name=f"bare-{key}-{index}")
            if index >= WARMUP_PAIRS:
                samples.aegis.append(aegis_s)
                samples.bare_popen.append(bare_s)
        progress(
            f"[{NAME}] {key}: aegis median {stats.to_ms(stats.median(samples.aegis)):.2f} ms, "
            f"bare_popen median {stats.to_ms(stats.median(samples.bare_popen)):.2f} ms"
        )
    return results


def _config_result(key: str, spec: NatsSpec, samples: _Samples) -> dict[str, Any]:
    aegis = stats.summarize(samples.aegis)
    bare = stats.summarize(samples.bare_popen)
    result: dict[str, Any] = {
        "spec": spec.model_dump(mode="json"),
        "label": spec.label,
        "aegis": aegis,
        "bare_popen": bare,
        "ratio": stats.ratio(stats.median(samples.aegis), stats.median(samples.bare_popen)),
        "paired_ratio_median": stats.paired_ratio_median(samples.aegis, samples.bare_popen),
        "samples_ms": {
            "aegis": [round(stats.to_ms(value), stats.DIGITS) for value in samples.aegis],
            "bare_popen": [round(stats.to_ms(value), stats.DIGITS) for value in samples.bare_popen],
        },
        "meets_targets": None,
    }
    if key == TARGET_CONFIG:
        checks = {
            "tls_userpass_js_median_ms": float(aegis["median_ms"]) <= TARGETS["tls_userpass_js_median_ms"],
            "ratio_max": result["ratio"] <= TARGETS["ratio_max"],
        }
        result["target_checks"] = checks
        result["meets_targets"] = all(checks.values())
    return result


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Measure every configuration ``reps`` times per contender; return the suite's results."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    noise = _DropSslEofNoise()
    logging.getLogger("asyncio").addFilter(noise)
    session = SessionState()
    try:
        backend = LocalBackend(AegisConfig(), session)
        ca_started = time.perf_counter()
        ca = AegisCA(session.new_dir("ca"))
        ca_setup_s = time.perf_counter() - ca_started
        pool = NatsPool(backend, session, lambda: ca)
        try:
            samples = asyncio.run(_measure(pool, session, backend.nats_bin, reps, _progress))
        finally:
            pool.close()
        return {
            "suite": NAME,
            "what": "time-to-ready: from the start of spawning a nats-server until the first "
            "nats.connect completes",
            "nats_server": {"version": backend.nats_version, "binary": str(backend.nats_bin)},
            "reps": reps,
            "quick": quick,
            "warmup_pairs": WARMUP_PAIRS,
            "order": "interleaved per configuration: aegis, bare_popen, aegis, bare_popen, ...",
            "contenders": {
                "aegis": "NatsPool(LocalBackend).start(spec): material prep, config write, Popen with the "
                "PR_SET_PDEATHSIG (setpriv), wait for 'Server is ready'; then await server.connect()",
                "bare_popen": "config write (same content via natsd.conf.render, own dir and "
                "JetStream store), Popen([bin, '-c', conf], stderr=PIPE), read stderr to "
                "'Server is ready', then the same nats.connect (same credentials and TLS context)",
            },
            "notes": [
                "one SessionState, LocalBackend and session CA (AegisCA) per bench run, as per pytest "
                "session: their setup is not part of the per-server time (ca_setup_ms is for reference)",
                "the first pair per configuration is a discarded warm-up (page cache, lazily issued "
                "session-wide certificates)",
                "client close and server stop are outside the timed region",
                "ratio = aegis median / bare_popen median; paired_ratio_median = median of per-pair ratios",
            ],
            "ca_setup_ms": round(stats.to_ms(ca_setup_s), stats.DIGITS),
            "targets": dict(TARGETS),
            "target_config": TARGET_CONFIG,
            "configs": {key: _config_result(key, CONFIGS[key], value) for key, value in samples.items()},
        }
    finally:
        session.close()
        logging.getLogger("asyncio").removeFilter(noise)
