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
    What the ``postgres_db`` fixture does per test: ``DatabaseAdmin.create`` from
    the migrated template (20 tables, each with an index) over the server's one
    open admin connection, as the pool keeps it.  Dropping is timed separately
    (``postgres_db_drop``).

``pytest_postgresql_db``
    The reference, interleaved with ``postgres_db`` against the same running
    server and the same template: pytest-postgresql's ``DatabaseJanitor(...,
    template_dbname=...).init()`` (and ``.drop()``, timed separately).  Optional:
    without pytest-postgresql the suite records ``"not installed"``.

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
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import stats
from pytest_aegis.config import AegisConfig
from pytest_aegis.postgres.databases import (
    DatabaseAdmin,
    PostgresDatabase,
    create_database,
    create_template,
    drop_database,
)
from pytest_aegis.postgres.local import LocalPostgres
from pytest_aegis.postgres.migrations import MigrationSource
from pytest_aegis.postgres.server import PostgresServer
from pytest_aegis.session import SessionState

NAME = "postgres"
TABLES = 20
TARGETS: dict[str, float] = {
    "warm_start_median_ms": 500,
    "postgres_db_median_ms": 50,
    "rollback_median_ms": 2,
}
COLD_REPS, COLD_REPS_QUICK = 3, 1
WARM_REPS, WARM_REPS_QUICK = 10, 2
DB_REPS, DB_REPS_QUICK = 30, 3
ROLLBACK_REPS, ROLLBACK_REPS_QUICK = 200, 20
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


def _janitor(janitor_cls: Any, server: PostgresServer, template: str) -> Any:
    return janitor_cls(
        user=server.user,
        password=server.password,
        host=server.host,
        port=server.port,
        dbname=f"ppg_{secrets.token_hex(6)}",
        template_dbname=template,
    )


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
                janitor = _janitor(janitor_cls, server, template)
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


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Run the postgres suite (``reps`` is the CLI's; the suite's counts are fixed per mode)."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    cold_reps = COLD_REPS_QUICK if quick else COLD_REPS
    warm_reps = WARM_REPS_QUICK if quick else WARM_REPS
    db_reps = DB_REPS_QUICK if quick else DB_REPS
    rollback_reps = ROLLBACK_REPS_QUICK if quick else ROLLBACK_REPS
    janitor_cls, ppg_version = _pytest_postgresql()

    session = SessionState()
    scratch = Path(tempfile.mkdtemp(prefix="aegis-bench-pg-"))
    pool = LocalPostgres(AegisConfig(), session)
    try:
        # Session-wide lookups (binaries, server user, PostgreSQL root), as once per pytest session.
        setup_started = time.perf_counter()
        binaries = pool.binaries
        _ = pool.user, pool.root
        setup_s = time.perf_counter() - setup_started

        cold, cold_hits = measure_cold(pool, scratch, cold_reps)
        _progress(f"server_cold_start median {_median_ms(cold):.1f} ms")

        warm_cache = scratch / "warm-cache"
        warm_cache.mkdir()
        with _cache_home(warm_cache):
            warm, warm_hits = measure_warm(pool, warm_reps)
            _progress(f"server_warm_start median {_median_ms(warm):.1f} ms")

            server = pool.start(name="bench-db")
            migrations = scratch / "migrations"
            write_migrations(migrations)
            template_started = time.perf_counter()
            template = create_template(server, MigrationSource(directory=migrations))
            template_s = time.perf_counter() - template_started
            db = measure_databases(server, template.name, janitor_cls, db_reps)
            _progress(f"postgres_db median {_median_ms(db['create']):.2f} ms")
            if janitor_cls is not None:
                _progress(f"pytest_postgresql_db median {_median_ms(db['ppg_create']):.2f} ms")

            tx_database = create_database(server, template.name, prefix="aegis_tx")
            try:
                rollback = measure_rollback(tx_database, rollback_reps)
            finally:
                drop_database(tx_database)
            _progress(f"rollback_mode median {_median_ms(rollback['rollback']):.3f} ms")

        results: dict[str, Any] = {
            "server_cold_start": {**stats.summarize(cold), "cache_hits": sum(cold_hits)},
            "server_warm_start": {**stats.summarize(warm), "cache_hits": sum(warm_hits)},
            "postgres_db": stats.summarize(db["create"]),
            "postgres_db_drop": stats.summarize(db["drop"]),
        }
        if janitor_cls is not None:
            results["pytest_postgresql_db"] = stats.summarize(db["ppg_create"])
            results["pytest_postgresql_db_drop"] = stats.summarize(db["ppg_drop"])
            results["postgres_db_vs_pytest_postgresql_ratio"] = stats.ratio(
                stats.median(db["create"]), stats.median(db["ppg_create"])
            )
        else:
            results["pytest_postgresql_db"] = {"skipped": "pytest-postgresql is not installed"}
        results["rollback_mode"] = stats.summarize(rollback["rollback"])
        results["rollback_mode_with_connect"] = stats.summarize(rollback["with_connect"])

        samples_ms = {
            "server_cold_start": _ms_list(cold),
            "server_warm_start": _ms_list(warm),
            "postgres_db": _ms_list(db["create"]),
            "pytest_postgresql_db": _ms_list(db["ppg_create"]),
        }
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
            "reps": {
                "server_cold_start": cold_reps,
                "server_warm_start": warm_reps,
                "postgres_db": db_reps,
                "rollback_mode": rollback_reps,
            },
            "template": {
                "tables": TABLES,
                "indexes": TABLES,
                "create_template_ms": round(stats.to_ms(template_s), stats.DIGITS),
            },
            "session_setup_ms": round(stats.to_ms(setup_s), stats.DIGITS),
            "notes": [
                "server starts: LocalPostgres.start() until the server logs it accepts connections; "
                "stop not timed",
                "cold: $XDG_CACHE_HOME points at a fresh empty directory per rep (initdb runs); warm: a "
                "private cache directory warmed by a discarded first start (the user's cache is untouched)",
                "postgres_db: create_database from the template (as the postgres_db fixture); "
                "pytest_postgresql_db: DatabaseJanitor(template_dbname=...).init() on the same server and "
                "template, interleaved per rep; drops timed separately (*_drop)",
                "rollback_mode: SELECT 1 (opens the transaction) + rollback on an open connection; "
                "rollback_mode_with_connect adds connect/close as the postgres_tx fixture does per test",
                f"the first rep of warm starts, databases and rollback is a discarded warm-up ({WARMUP})",
                "binaries lookup, server user and PostgreSQL root are per-session (session_setup_ms)",
            ],
            "results": results,
            "samples_ms": samples_ms,
            "targets": dict(TARGETS),
            "observed": observed,
            "target_checks": checks,
            "meets_targets": all(checks.values()),
        }
    finally:
        pool.close()
        session.close()
        shutil.rmtree(scratch, ignore_errors=True)
