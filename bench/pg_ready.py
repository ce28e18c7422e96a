"""Suite ``postgres``: server start (cold and warm initdb cache), per-test databases, rollback mode.

Measured with :func:`time.perf_counter`, summarised by :mod:`bench.stats`:

``server_cold_start``
    ``LocalPostgres.start()`` with an empty initdb cache (``$XDG_CACHE_HOME``
    pointed at a fresh temporary directory per repetition, so ``initdb`` runs),
    until the server logs that it accepts connections.  Stopping is not timed.

``server_warm_start``
    ``LocalPostgres.start()`` with the cache already populated (a private cache
    directory warmed by a discarded first start): copy of the cached cluster,
    spawn, wait for ready.  Stopping is not timed.

``postgres_db``
    What the ``postgres_db`` fixture costs a test: a spare database taken (see
    :mod:`bench.pg_spares`), interleaved with ``pytest_postgresql_db``, the reference:
    pytest-postgresql's ``DatabaseJanitor(..., template_dbname=...).init()`` on the same
    server and template.  Optional: without pytest-postgresql the suite records
    ``"not installed"``.

``postgres_db_clone``
    What the fixture costs when no spare is ready: ``DatabaseAdmin.create`` from the
    migrated template (20 tables, each with an index) over the server's one open
    admin connection, interleaved with the janitor (``pytest_postgresql_db_beside_clone``).
    Dropping is timed separately (``postgres_db_drop``, ``pytest_postgresql_db_drop``).

``rollback_mode``
    The per-test cost of the ``postgres_tx`` fixture, whose connection stays
    open across tests: a trivial statement (which opens the transaction), the
    rollback and the ``DISCARD ALL`` that resets session state.
    ``rollback_mode_with_connect`` is the same with a login and close per test
    (what the fixture did before it kept its connection), for reference.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import stats
from bench.pg_spares import make_janitor, measure_spares
from pytest_aegis.backends.local.postgres import LocalPostgres, PostgresServer
from pytest_aegis.config import AegisConfig
from pytest_aegis.postgres.databases import DatabaseAdmin, create_database, create_template, drop_database
from pytest_aegis.postgres.handle import PostgresDatabase
from pytest_aegis.postgres.migrations import MigrationSource
from pytest_aegis.session import SessionState

NAME = "postgres"
TABLES = 20
TARGETS: dict[str, float] = {
    "warm_start_median_ms": 500,
    "postgres_db_median_ms": 5,
    "rollback_median_ms": 2,
}
#: Repetitions of each measurement: (full run, --quick).
REPS: dict[str, tuple[int, int]] = {
    "server_cold_start": (3, 1),
    "server_warm_start": (10, 2),
    "postgres_db": (30, 3),
    "rollback_mode": (200, 20),
}
WARMUP = 1


def _progress(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def write_migrations(directory: Path, tables: int = TABLES) -> list[Path]:
    """``tables`` migration files ``NNN_t_NN.sql``: one table and one index each."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(1, tables + 1):
        table = f"t_{number:02d}"
        path = directory / f"{number:03d}_{table}.sql"
        path.write_text(
            f"CREATE TABLE {table} (id bigserial primary key, name text not null, "
            f"created_at timestamptz default now(), payload jsonb);\n"
            f"CREATE INDEX {table}_name_idx ON {table} (name);\n"
        )
        files.append(path)
    return files


@contextlib.contextmanager
def _cache_home(path: Path) -> Iterator[None]:
    """Point the initdb cache (``$XDG_CACHE_HOME/pytest-aegis``) at ``path``; restore after."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = previous


def _timed_start(pool: LocalPostgres) -> tuple[float, bool]:
    """One ``pool.start()`` in seconds (stop not timed), and whether it hit the cache."""
    started = time.perf_counter()
    server = pool.start(name="bench")
    elapsed = time.perf_counter() - started
    hit = server.cache_hit
    server.remove()  # keeps the disk use of a run flat
    return elapsed, hit


def measure_cold(pool: LocalPostgres, scratch: Path, reps: int) -> tuple[list[float], list[bool]]:
    samples, hits = [], []
    for index in range(reps):
        cache = scratch / f"cold-cache-{index}"
        cache.mkdir()
        try:
            with _cache_home(cache):
                elapsed, hit = _timed_start(pool)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        samples.append(elapsed)
        hits.append(hit)
    return samples, hits


def measure_warm(pool: LocalPostgres, reps: int) -> tuple[list[float], list[bool]]:
    """Call with the cache home set; the first start (warming the cache) is discarded."""
    samples, hits = [], []
    for index in range(WARMUP + reps):
        elapsed, hit = _timed_start(pool)
        if index >= WARMUP:
            samples.append(elapsed)
            hits.append(hit)
    return samples, hits


# -- per-test databases ------------------------------------------------------------


def _pytest_postgresql() -> tuple[Any, str] | tuple[None, str]:
    """``(DatabaseJanitor, version)`` or ``(None, "not installed")``."""
    try:
        from importlib.metadata import version

        from pytest_postgresql.janitor import DatabaseJanitor
    except ImportError:
        return None, "not installed"
    try:
        installed = version("pytest-postgresql")
    except Exception:  # pragma: no cover - metadata missing
        installed = "unknown"
    return DatabaseJanitor, installed


def measure_databases(
    server: PostgresServer, template: str, janitor_cls: Any, reps: int
) -> dict[str, list[float]]:
    """Interleaved: aegis create, pytest-postgresql create, then both drops (timed apart)."""
    with DatabaseAdmin(server) as admin:
        return _measure_databases(admin, server, template, janitor_cls, reps)


def _measure_databases(
    admin: DatabaseAdmin, server: PostgresServer, template: str, janitor_cls: Any, reps: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"create": [], "drop": [], "ppg_create": [], "ppg_drop": []}
    for index in range(WARMUP + reps):
        keep = index >= WARMUP
        started = time.perf_counter()
        database = admin.create(template)
        created = time.perf_counter()
        try:
            if janitor_cls is not None:
                janitor = make_janitor(janitor_cls, server, template)
                ppg_started = time.perf_counter()
                janitor.init()
                ppg_created = time.perf_counter()
                ppg_drop_started = time.perf_counter()
                janitor.drop()
                ppg_dropped = time.perf_counter()
                if keep:
                    samples["ppg_create"].append(ppg_created - ppg_started)
                    samples["ppg_drop"].append(ppg_dropped - ppg_drop_started)
        finally:
            drop_started = time.perf_counter()
            admin.drop(database)
            dropped = time.perf_counter()
        if keep:
            samples["create"].append(created - started)
            samples["drop"].append(dropped - drop_started)
    return samples


# -- rollback mode -----------------------------------------------------------------


def measure_rollback(database: PostgresDatabase, reps: int) -> dict[str, list[float]]:
    """``postgres_tx`` per test: statement + rollback on an open connection; and with connect."""
    samples: dict[str, list[float]] = {"rollback": [], "with_connect": []}
    with database.connect() as conn:
        for index in range(WARMUP + reps):
            started = time.perf_counter()
            conn.execute("SELECT 1")  # psycopg opens the transaction (BEGIN) first
            conn.rollback()
            conn.autocommit = True  # as PostgresPool.reset_tx_connection
            conn.execute("DISCARD ALL")
            conn.autocommit = False
            elapsed = time.perf_counter() - started
            if index >= WARMUP:
                samples["rollback"].append(elapsed)
    for index in range(WARMUP + reps):
        started = time.perf_counter()
        conn = database.connect()
        try:
            conn.execute("SELECT 1")
        finally:
            conn.rollback()
            conn.close()
        elapsed = time.perf_counter() - started
        if index >= WARMUP:
            samples["with_connect"].append(elapsed)
    return samples


# -- the run -----------------------------------------------------------------------


def _median_ms(samples: list[float]) -> float:
    return round(stats.to_ms(stats.median(samples)), stats.DIGITS)


def _ms_list(samples: list[float]) -> list[float]:
    return [round(stats.to_ms(value), stats.DIGITS) for value in samples]


@dataclass
class _Measured:
    """What one run measured (seconds), before it is summarised."""

    with_janitor: bool = False
    setup_s: float = 0.0
    template_s: float = 0.0
    cold: list[float] = field(default_factory=list)
    cold_hits: list[bool] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    warm_hits: list[bool] = field(default_factory=list)
    db: dict[str, list[float]] = field(default_factory=dict)
    spares: dict[str, list[float]] = field(default_factory=dict)
    rollback: dict[str, list[float]] = field(default_factory=dict)


def _reps(quick: bool) -> dict[str, int]:
    return {name: counts[1] if quick else counts[0] for name, counts in REPS.items()}


def _measure(pool: LocalPostgres, scratch: Path, reps: dict[str, int], janitor_cls: Any) -> _Measured:
    out = _Measured(with_janitor=janitor_cls is not None)
    # Session-wide lookups (binaries, server user, PostgreSQL root), as once per pytest session.
    setup_started = time.perf_counter()
    _ = pool.binaries, pool.user, pool.root
    out.setup_s = time.perf_counter() - setup_started

    out.cold, out.cold_hits = measure_cold(pool, scratch, reps["server_cold_start"])
    _progress(f"server_cold_start median {_median_ms(out.cold):.1f} ms")
    warm_cache = scratch / "warm-cache"
    warm_cache.mkdir()
    with _cache_home(warm_cache):
        out.warm, out.warm_hits = measure_warm(pool, reps["server_warm_start"])
        _progress(f"server_warm_start median {_median_ms(out.warm):.1f} ms")
        server = pool.start(name="bench-db")
        migrations = scratch / "migrations"
        write_migrations(migrations)
        template_started = time.perf_counter()
        template = create_template(server, MigrationSource(directory=migrations))
        out.template_s = time.perf_counter() - template_started
        out.db = measure_databases(server, template.name, janitor_cls, reps["postgres_db"])
        out.spares = measure_spares(server, template.name, janitor_cls, reps["postgres_db"])
        _progress(f"postgres_db median {_median_ms(out.spares['take']):.3f} ms")
        _progress(f"postgres_db_clone median {_median_ms(out.db['create']):.2f} ms")
        if janitor_cls is not None:
            _progress(f"pytest_postgresql_db median {_median_ms(out.spares['ppg_create']):.2f} ms")
        tx_database = create_database(server, template.name, prefix="aegis_tx")
        try:
            out.rollback = measure_rollback(tx_database, reps["rollback_mode"])
        finally:
            drop_database(tx_database)
        _progress(f"rollback_mode median {_median_ms(out.rollback['rollback']):.3f} ms")
    return out


def _results(m: _Measured, with_janitor: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "server_cold_start": {**stats.summarize(m.cold), "cache_hits": sum(m.cold_hits)},
        "server_warm_start": {**stats.summarize(m.warm), "cache_hits": sum(m.warm_hits)},
        "postgres_db": {
            **stats.summarize(m.spares["take"]),
            "cloned_on_demand": int(sum(m.spares["fallbacks"])),
        },
        "postgres_db_clone": stats.summarize(m.db["create"]),
        "postgres_db_drop": stats.summarize(m.db["drop"]),
    }
    if with_janitor:
        results["pytest_postgresql_db"] = stats.summarize(m.spares["ppg_create"])
        results["pytest_postgresql_db_beside_clone"] = stats.summarize(m.db["ppg_create"])
        results["pytest_postgresql_db_drop"] = stats.summarize(m.db["ppg_drop"])
        results["postgres_db_vs_pytest_postgresql_ratio"] = stats.ratio(
            stats.median(m.spares["take"]), stats.median(m.spares["ppg_create"])
        )
    else:
        results["pytest_postgresql_db"] = {"skipped": "pytest-postgresql is not installed"}
    results["rollback_mode"] = stats.summarize(m.rollback["rollback"])
    results["rollback_mode_with_connect"] = stats.summarize(m.rollback["with_connect"])
    return results


NOTES = [
    "server starts: LocalPostgres.start() until the server logs it accepts connections; stop not timed",
    "cold: $XDG_CACHE_HOME points at a fresh empty directory per rep (initdb runs); warm: a "
    "private cache directory warmed by a discarded first start (the user's cache is untouched)",
    "postgres_db: a spare taken (as the fixture), then a minimal test (connect, SELECT 1) and the "
    "database given back; pytest_postgresql_db: DatabaseJanitor(template_dbname=...).init() on the "
    "same server and template, interleaved per rep; postgres_db_clone: CREATE DATABASE from the "
    "template (no spare ready); drops timed separately (*_drop)",
    "rollback_mode: SELECT 1 (opens the transaction) + rollback on an open connection; "
    "rollback_mode_with_connect adds connect/close as the postgres_tx fixture does per test",
    f"the first rep of warm starts, databases and rollback is a discarded warm-up ({WARMUP})",
    "binaries lookup, server user and PostgreSQL root are per-session (session_setup_ms)",
]


def _report(
    m: _Measured, binaries: Any, ppg_version: Any, quick: bool, reps: dict[str, int]
) -> dict[str, Any]:
    results = _results(m, with_janitor="ppg_create" in m.db and bool(m.db["ppg_create"]))
    observed = {
        "warm_start_median_ms": results["server_warm_start"]["median_ms"],
        "postgres_db_median_ms": results["postgres_db"]["median_ms"],
        "rollback_median_ms": results["rollback_mode"]["median_ms"],
    }
    checks = {key: float(observed[key]) <= TARGETS[key] for key in TARGETS}
    return {
        "suite": NAME,
        "what": "PostgreSQL fixtures: server start (cold/warm initdb cache), per-test database "
        "from a migrated template, rollback-mode cost per test",
        "postgres": {"version": binaries.version, "bin_dir": str(binaries.bin_dir)},
        "pytest_postgresql": ppg_version,
        "quick": quick,
        "reps": reps,
        "template": {
            "tables": TABLES,
            "indexes": TABLES,
            "create_template_ms": round(stats.to_ms(m.template_s), stats.DIGITS),
        },
        "session_setup_ms": round(stats.to_ms(m.setup_s), stats.DIGITS),
        "notes": NOTES,
        "results": results,
        "samples_ms": {
            "server_cold_start": _ms_list(m.cold),
            "server_warm_start": _ms_list(m.warm),
            "postgres_db": _ms_list(m.spares["take"]),
            "postgres_db_clone": _ms_list(m.db["create"]),
            "pytest_postgresql_db": _ms_list(m.spares["ppg_create"]),
        },
        "targets": dict(TARGETS),
        "observed": observed,
        "target_checks": checks,
        "meets_targets": all(checks.values()),
    }


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Run the postgres suite (``reps`` is the CLI's; the suite's counts are fixed per mode)."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    counts = _reps(quick)
    janitor_cls, ppg_version = _pytest_postgresql()
    session = SessionState()
    scratch = Path(tempfile.mkdtemp(prefix="aegis-bench-pg-"))
    pool = LocalPostgres(AegisConfig(), session)
    try:
        measured = _measure(pool, scratch, counts, janitor_cls)
        return _report(measured, pool.binaries, ppg_version, quick, counts)
    finally:
        pool.close()
        session.close()
        shutil.rmtree(scratch, ignore_errors=True)
