"""Databases inside a server: the migrated template and a fresh copy per test.

``CREATE DATABASE ... TEMPLATE`` copies the template's files, which is far
cheaper than replaying migrations, so migrations run once per server (into
``aegis_template``) and each test gets its own copy.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import errors, sql

from pytest_aegis.postgres.server import PostgresServer

TEMPLATE = "aegis_template"
_MIGRATION = re.compile(r"^(\d+)_.+\.sql$")


class MigrationError(RuntimeError):
    """A migration file failed; the message names it and PostgreSQL's error."""


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on a :class:`PostgresServer`."""

    server: PostgresServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn_for(self.name)

    def connect(self, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
        """A new psycopg connection to this database (close it, or use ``with``)."""
        return psycopg.connect(self.dsn, **kwargs)  # type: ignore[arg-type]


def migration_files(directory: Path) -> list[Path]:
    """``NNN_name.sql`` files of ``directory``, by their number; anything else is an error."""
    if not directory.is_dir():
        raise MigrationError(f"aegis_pg_migrations: {directory} is not a directory")
    files = []
    for path in directory.iterdir():
        if path.suffix != ".sql":
            continue
        match = _MIGRATION.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files must be named NNN_name.sql")
        files.append((int(match.group(1)), path.name, path))
    numbers = [number for number, _, _ in files]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise MigrationError(f"{directory}: more than one migration numbered {duplicates}")
    return [path for _, _, path in sorted(files)]


def _admin(server: PostgresServer) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.dsn, autocommit=True)


def create_template(server: PostgresServer, migrations: Path | None) -> PostgresDatabase:
    """Create ``aegis_template`` and apply ``migrations`` to it, each file in its own transaction."""
    with _admin(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    template = PostgresDatabase(server, TEMPLATE)
    if migrations is not None:
        files = migration_files(migrations)
        with template.connect() as conn:
            for path in files:
                try:
                    with conn.transaction():
                        conn.execute(path.read_text().encode())
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {path} failed: {exc}") from exc
    with _admin(server) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(TEMPLATE)
            )
        )
    return template


def create_database(
    server: PostgresServer, template: str = TEMPLATE, prefix: str = "test"
) -> PostgresDatabase:
    """A new database copied from ``template``."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    with _admin(server) as conn:
        for attempt in range(50):
            try:
                conn.execute(statement)
                break
            except errors.ObjectInUse:
                # A session on the template is still exiting (backends end asynchronously).
                if attempt == 49:
                    raise
                time.sleep(0.02)
    return PostgresDatabase(server, name)


def drop_database(database: PostgresDatabase) -> None:
    with _admin(database.server) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name))
        )
