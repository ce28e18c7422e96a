"""Databases inside a server: the migrated template and a fresh copy per test (needs psycopg,
the ``postgres`` extra).

``CREATE DATABASE ... TEMPLATE`` copies the template's files, which is far
cheaper than replaying migrations, so migrations run once per server (into
``aegis_template``) and each test gets its own copy.  One
:class:`DatabaseAdmin` per server keeps a single admin connection open, so a
test's database costs one statement, not a login (SCRAM) plus a statement.
"""

from __future__ import annotations

import secrets
import threading
from types import TracebackType

import psycopg
from psycopg import errors, sql

from pytest_aegis.postgres.handle import PostgresDatabase, PostgresHandle
from pytest_aegis.postgres.migrations import MigrationSource
from pytest_aegis.waiting import wait_until

TEMPLATE = "aegis_template"
Connection = psycopg.Connection[tuple[object, ...]]


class DatabaseAdmin:
    """Creates and drops databases on one server over one autocommit connection.

    Thread-safe (a lock around the connection).  A connection broken by a server
    restart is replaced once before a statement is given up on.
    """

    def __init__(self, server: PostgresHandle, *, timeout: float = 10.0) -> None:
        self.server = server
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.server.dsn, autocommit=True, connect_timeout=max(2, round(self._timeout))
            )
        return self._conn

    def execute(self, statement: sql.Composed) -> None:
        with self._lock:
            try:
                self._connection().execute(statement)
            except psycopg.OperationalError:
                if self._conn is not None and not self._conn.broken:
                    raise
                self._conn = None  # the server restarted under us: one fresh login
                self._connection().execute(statement)

    def create_template(self, migrations: MigrationSource | None, name: str = TEMPLATE) -> PostgresDatabase:
        """Create ``name`` and bring it to the head of ``migrations``; then mark it a template."""
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        template = PostgresDatabase(self.server, name)
        if migrations is not None:
            migrations.apply(template.dsn)
        self.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        return template

    def create(self, template: str = TEMPLATE, prefix: str = "test") -> PostgresDatabase:
        """A new database copied from ``template``."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )

        def attempt() -> bool:
            self.execute(statement)
            return True

        # "source database is being accessed by other users": a session on the template
        # (the migration's) is still exiting; backends end asynchronously.
        wait_until(
            attempt,
            f"CREATE DATABASE {name} TEMPLATE {template}",
            timeout=self._timeout,
            transient=(errors.ObjectInUse,),
            hint="something keeps a connection open to the template database",
        )
        return PostgresDatabase(self.server, name)

    def drop(self, database: PostgresDatabase) -> None:
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name)))

    def drop_template(self, database: PostgresDatabase) -> None:
        """Drop a template made by :meth:`create_template` (a template cannot be dropped as it is)."""
        name = sql.Identifier(database.name)
        self.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(name))
        self.drop(database)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> DatabaseAdmin:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


def create_template(server: PostgresHandle, migrations: MigrationSource | None) -> PostgresDatabase:
    """One-off form of :meth:`DatabaseAdmin.create_template`."""
    with DatabaseAdmin(server) as admin:
        return admin.create_template(migrations)


def create_database(
    server: PostgresHandle, template: str = TEMPLATE, prefix: str = "test"
) -> PostgresDatabase:
    """One-off form of :meth:`DatabaseAdmin.create`."""
    with DatabaseAdmin(server) as admin:
        return admin.create(template, prefix)


def drop_database(database: PostgresDatabase) -> None:
    """One-off form of :meth:`DatabaseAdmin.drop`."""
    with DatabaseAdmin(database.server) as admin:
        admin.drop(database)
