"""Databases inside a server: the migrated template and a fresh copy per test.

``CREATE DATABASE ... TEMPLATE`` copies the template's files, which is far
cheaper than replaying migrations, so migrations run once per server (into
``aegis_template``) and each test gets its own copy.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from pytest_aegis.postgres.handle import PostgresHandle
from pytest_aegis.postgres.migrations import MigrationSource

TEMPLATE = "aegis_template"


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on a :class:`PostgresHandle`."""

    server: PostgresHandle
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn_for(self.name)

    def connect(self, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
        """A new psycopg connection to this database (close it, or use ``with``)."""
        return psycopg.connect(self.dsn, **kwargs)  # type: ignore[arg-type]


def _admin(server: PostgresHandle) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.dsn, autocommit=True)


def create_template(server: PostgresHandle, migrations: MigrationSource | None) -> PostgresDatabase:
    """Create ``aegis_template`` and bring it to the head of ``migrations``."""
    with _admin(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    template = PostgresDatabase(server, TEMPLATE)
    if migrations is not None:
        migrations.apply(template.dsn)
    with _admin(server) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(TEMPLATE)
            )
        )
    return template


def create_database(
    server: PostgresHandle, template: str = TEMPLATE, prefix: str = "test"
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
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name)))
