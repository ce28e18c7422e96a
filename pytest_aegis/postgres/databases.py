"""Databases inside a server: the migrated template and a fresh copy per test (needs psycopg,
the ``postgres`` extra).

``CREATE DATABASE ... TEMPLATE`` copies the template's files, which is far
cheaper than replaying migrations, so migrations run once per server (into
``aegis_template``) and each test gets its own copy.  One
:class:`DatabaseAdmin` per server keeps a single admin connection open, so a
test's database costs one statement, not a login (SCRAM) plus a statement.

Every database a session makes carries its owner's mark (``COMMENT ON DATABASE``: ``pytest-aegis
session <token>``), and the session holds an advisory lock keyed by that token on its admin
connection while it lives.  A session killed with ``kill -9`` loses its connection and so its
lock: :meth:`DatabaseAdmin.sweep` drops the marked databases whose owner's lock is free (on a
server shared between sessions, the external backend's; a server a session started dies with it).
"""

from __future__ import annotations

import re
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
#: ``COMMENT ON DATABASE`` of every database a session made, followed by its owner token.
OWNER_MARK = "pytest-aegis session "
#: The advisory-lock class id of pytest-aegis sessions ("Aegi"); the object id is the token.
LOCK_CLASS = 0x41656769


def owner_token() -> str:
    """A new session owner token (8 hex digits: an advisory lock's 32-bit object id)."""
    return secrets.token_hex(4)


def _lock_key(token: str) -> int:
    return int(token, 16) - 2**31  # a signed int4


class DatabaseAdmin:
    """Creates and drops databases on one server over one autocommit connection.

    Thread-safe (a lock around the connection).  A connection broken by a server
    restart is replaced once before a statement is given up on.
    """

    def __init__(
        self,
        server: PostgresHandle,
        *,
        timeout: float = 10.0,
        owner: str | None = None,
        holds_lock: bool = True,
    ) -> None:
        self.server = server
        self._timeout = timeout
        self._owner = owner or owner_token()
        self._holds_lock = holds_lock
        self._lock = threading.Lock()
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            # Every statement has a deadline too (a CREATE DATABASE waiting on a lock included).
            self._conn = psycopg.connect(
                self.server.dsn,
                autocommit=True,
                connect_timeout=max(2, round(self._timeout)),
                options=f"-c statement_timeout={round(self._timeout * 1000)}",
            )
            if self._holds_lock:  # the owner's mark stays valid while this session lives
                self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, _lock_key(self._owner))
                )
        return self._conn

    def _run(
        self, statement: sql.Composable | str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                cursor = self._connection().execute(statement, params)  # type: ignore[arg-type]
            except psycopg.OperationalError:
                if self._conn is not None and not self._conn.broken:
                    raise
                self._conn = None  # the server restarted under us: one fresh login
                cursor = self._connection().execute(statement, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description is not None else []

    def execute(self, statement: sql.Composed) -> None:
        self._run(statement)

    def _mark(self, name: str) -> None:
        self.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(OWNER_MARK + self._owner)
            )
        )

    def create_template(self, migrations: MigrationSource | None, name: str = TEMPLATE) -> PostgresDatabase:
        """Create ``name`` and bring it to the head of ``migrations``; then mark it a template."""
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._mark(name)
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
        self._mark(name)
        return PostgresDatabase(self.server, name)

    def drop(self, database: PostgresDatabase) -> None:
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name)))

    def drop_template(self, database: PostgresDatabase) -> None:
        """Drop a template made by :meth:`create_template` (a template cannot be dropped as it is)."""
        name = sql.Identifier(database.name)
        self.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(name))
        self.drop(database)

    def sweep(self) -> list[str]:
        """Drop the databases of dead sessions (marked, their owner's lock free); return their names."""
        rows = self._run(
            "SELECT datname, substr(shobj_description(oid, 'pg_database'), %s) FROM pg_database"
            " WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (len(OWNER_MARK) + 1, OWNER_MARK + "%"),
        )
        by_owner: dict[str, list[str]] = {}
        for name, token in rows:
            if isinstance(token, str) and token != self._owner and re.fullmatch("[0-9a-f]{8}", token):
                by_owner.setdefault(token, []).append(str(name))
        swept = []
        for token, names in by_owner.items():
            key = (LOCK_CLASS, _lock_key(token))
            if self._run("SELECT pg_try_advisory_lock(%s, %s)", key) != [(True,)]:
                continue  # its session is alive
            try:
                for name in names:
                    self.drop_template(PostgresDatabase(self.server, name))
                    swept.append(name)
            finally:
                self._run("SELECT pg_advisory_unlock(%s, %s)", key)
        return swept

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
