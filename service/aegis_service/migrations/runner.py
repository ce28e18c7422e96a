"""Versioned SQL migrations: ``NNN_name.up.sql`` / ``NNN_name.down.sql`` files in this package.

Applied versions are recorded in ``schema_migrations``.  Each step runs in its own transaction
together with its bookkeeping row, under a transaction-scoped advisory lock, so concurrent runners
(several test workers on one template, several service instances) apply each step exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")
#: Arbitrary, fixed key of the advisory lock that serialises migration runners on one database.
LOCK_KEY = 0x6165_6769_7300  # "aegis"

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A migration could not be applied or reverted; the message names the file and the cause."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"


def load_migrations() -> list[Migration]:
    """Every migration of this package, by version; a missing half or a stray file is an error."""
    found: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for entry in resources.files(__package__).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files must be named NNN_name.up|down.sql")
        version = int(match["version"])
        if names.setdefault(version, match["name"]) != match["name"]:
            raise MigrationError(f"two migrations numbered {version:03d}: {names[version]}, {match['name']}")
        found.setdefault(version, {})[match["direction"]] = entry.read_text(encoding="utf-8")
    migrations = []
    for version in sorted(found):
        halves = found[version]
        missing = {"up", "down"} - set(halves)
        if missing:
            raise MigrationError(f"migration {version:03d}_{names[version]} has no {missing.pop()}.sql")
        migrations.append(Migration(version, names[version], halves["up"], halves["down"]))
    return migrations


def head() -> int:
    """The newest version this code knows (0 when there are no migrations)."""
    migrations = load_migrations()
    return migrations[-1].version if migrations else 0


def _applied(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    assert row is not None
    return int(row[0])


def current_version(dsn: str) -> int:
    """The highest applied version; 0 for a database never migrated."""
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        return _applied(conn)


def _locked(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    """Inside a transaction: take the runner lock, make sure the bookkeeping exists, read the version."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    conn.execute(_BOOKKEEPING)
    return _applied(conn)


def upgrade(dsn: str, target: int | None = None) -> None:
    """Apply every pending migration up to ``target`` (default: :func:`head`).

    Compatible with ``aegis_pg_migrations = "aegis_service.migrations:upgrade"`` (called with the
    template database's DSN)."""
    migrations = load_migrations()
    goal = head() if target is None else target
    if goal < 0 or (goal and goal not in {m.version for m in migrations}):
        raise MigrationError(f"no migration numbered {goal}; head is {head()}")
    with psycopg.connect(dsn) as conn:
        for migration in migrations:
            if migration.version > goal:
                break
            with conn.transaction():
                if _locked(conn) >= migration.version:
                    continue
                _run(conn, migration.up, migration, "up")
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )


def downgrade(dsn: str, steps: int = 1) -> None:
    """Revert the newest ``steps`` applied migrations (fewer if fewer are applied)."""
    if steps < 1:
        raise MigrationError(f"steps must be at least 1, got {steps}")
    by_version = {m.version: m for m in load_migrations()}
    with psycopg.connect(dsn) as conn:
        for _ in range(steps):
            with conn.transaction():
                version = _locked(conn)
                if version == 0:
                    return
                migration = by_version.get(version)
                if migration is None:
                    raise MigrationError(f"database is at version {version}, which this code does not know")
                _run(conn, migration.down, migration, "down")
                conn.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))


def _run(conn: psycopg.Connection[tuple[Any, ...]], text: str, migration: Migration, direction: str) -> None:
    try:
        conn.execute(text.encode())
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.label}.{direction}.sql failed: {exc}") from exc
