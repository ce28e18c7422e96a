"""``postgres_db`` as a test sees it: a database taken from the server's spares
(:class:`~pytest_aegis.postgres.spares.SpareDatabases`, as the fixture does), interleaved per rep
with pytest-postgresql's ``DatabaseJanitor(template_dbname=...).init()`` on the same server and
template.

Each rep is a minimal test on the database it got (connect, ``SELECT 1``, close) and the database
given back, so the spares' worker has the time a real test gives it: ~5 ms here, less than any
test that does real work on its database.  What the fixture costs when no spare is ready is the
``postgres_db_clone`` figure (one ``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from pytest_aegis.postgres.databases import DatabaseAdmin
from pytest_aegis.postgres.handle import PostgresDatabase, PostgresHandle
from pytest_aegis.postgres.spares import SpareDatabases

#: Spares per server, as the fixture's default (``--aegis-pg-spare-databases``).
SPARES = 2
WARMUP = 1


def _test_body(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10) as conn:
        conn.execute("SELECT 1")


def measure_spares(
    server: PostgresHandle, template: str, janitor_cls: Any, reps: int
) -> dict[str, list[float]]:
    """Interleaved per rep: take a spare (timed), then the janitor's init (timed)."""
    samples: dict[str, list[float]] = {"take": [], "ppg_create": [], "fallbacks": []}
    with DatabaseAdmin(server) as main, DatabaseAdmin(server, holds_lock=False) as worker:
        spares = SpareDatabases(main, worker, template, SPARES)
        try:
            for index in range(WARMUP + reps):
                keep = index >= WARMUP
                ready = spares.ready_count
                started = time.perf_counter()
                database = spares.take()
                taken = time.perf_counter() - started
                _test_body(database.dsn)
                spares.give_back(database)
                if keep:
                    samples["take"].append(taken)
                    samples["fallbacks"].append(float(ready == 0))
                if janitor_cls is not None:
                    elapsed = _janitor_once(janitor_cls, server, template)
                    if keep:
                        samples["ppg_create"].append(elapsed)
        finally:
            spares.close()
    return samples


def make_janitor(janitor_cls: Any, server: PostgresHandle, template: str) -> Any:
    """pytest-postgresql's ``DatabaseJanitor`` for a new database copied from ``template``."""
    return janitor_cls(
        user=server.user,
        password=server.password,
        host=server.host,
        port=server.port,
        dbname=f"ppg_{secrets.token_hex(6)}",
        template_dbname=template,
    )


def _janitor_once(janitor_cls: Any, server: PostgresHandle, template: str) -> float:
    janitor = make_janitor(janitor_cls, server, template)
    started = time.perf_counter()
    janitor.init()
    elapsed = time.perf_counter() - started
    try:
        _test_body(PostgresDatabase(server, janitor.dbname).dsn)
    finally:
        janitor.drop()
    return elapsed
