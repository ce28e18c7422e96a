"""The session's PostgreSQL servers (one shared, started on first use) and their databases.

Backend-neutral: servers come from :meth:`Backend.start_postgres`.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from pytest_aegis.config import AegisConfig
from pytest_aegis.ports import release_port
from pytest_aegis.postgres.databases import TEMPLATE, Connection, DatabaseAdmin, owner_token
from pytest_aegis.postgres.handle import PostgresDatabase, PostgresHandle
from pytest_aegis.postgres.migrations import parse_migrations
from pytest_aegis.postgres.spares import SpareDatabases

if TYPE_CHECKING:  # backends import this package
    from pytest_aegis.backends.base import Backend


class PostgresPool:
    def __init__(self, config: AegisConfig, backend: Backend) -> None:
        self._config = config
        self._backend = backend
        self.migrations = (
            # a directory was made absolute (rootdir) by the plugin
            parse_migrations(config.pg_migrations, Path.cwd()) if config.pg_migrations else None
        )
        self._shared: PostgresHandle | None = None
        self._owner = owner_token()  # marks what this session makes (DatabaseAdmin.sweep)
        self._admins: dict[int, DatabaseAdmin] = {}
        self._spares: dict[int, SpareDatabases] = {}
        self._templates: dict[int, PostgresDatabase] = {}
        self._tx_databases: dict[int, PostgresDatabase] = {}
        self._tx_connections: dict[int, Connection] = {}
        self.servers: list[PostgresHandle] = []

    def describe(self) -> str:
        return self._backend.describe_postgres()

    def get(self) -> PostgresHandle:
        """The shared server, started on first use (and again if a test killed it)."""
        if self._shared is None or not self._shared.is_running:
            self._shared = self.start(name="shared")
        return self._shared

    def start(self, *, name: str | None = None) -> PostgresHandle:
        """A new server, not shared with anyone (removed at session end)."""
        server = self._backend.start_postgres(name=f"{name or 'pg'}-{len(self.servers) + 1}")
        self.servers.append(server)
        return server

    def _forget(self, server: PostgresHandle) -> None:
        key = id(server)
        if (spares := self._spares.pop(key, None)) is not None:
            spares.close()
        self._templates.pop(key, None)
        self._tx_databases.pop(key, None)
        if (conn := self._tx_connections.pop(key, None)) is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if (admin := self._admins.pop(key, None)) is not None:
            with contextlib.suppress(Exception):
                admin.close()

    def admin(self, server: PostgresHandle) -> DatabaseAdmin:
        """The server's :class:`DatabaseAdmin` (one open admin connection per server)."""
        key = id(server)
        if key not in self._admins:
            admin = self._admins[key] = self._new_admin(server)
            if server.shared:  # a server other sessions use: drop what killed ones left there
                admin.sweep()
        return self._admins[key]

    def _new_admin(self, server: PostgresHandle, *, holds_lock: bool = True) -> DatabaseAdmin:
        return DatabaseAdmin(
            server, timeout=self._config.start_timeout, owner=self._owner, holds_lock=holds_lock
        )

    def spares(self, server: PostgresHandle) -> SpareDatabases:
        """The server's ready copies of the template (``aegis_pg_spare_databases`` of them)."""
        key = id(server)
        if key not in self._spares:
            template = self.template(server).name
            worker = self._new_admin(server, holds_lock=False)
            self._spares[key] = SpareDatabases(
                self.admin(server), worker, template, self._config.pg_spare_databases
            )
        return self._spares[key]

    def template(self, server: PostgresHandle) -> PostgresDatabase:
        """``aegis_template`` on ``server``, with the migrations applied (made once per server)."""
        key = id(server)
        if key not in self._templates:
            # A server other sessions use too (external): a template of the session's own, dropped at close.
            name = f"{TEMPLATE}_{secrets.token_hex(4)}" if server.shared else TEMPLATE
            self._templates[key] = self.admin(server).create_template(self.migrations, name)
        return self._templates[key]

    def new_database(self, server: PostgresHandle) -> PostgresDatabase:
        """A fresh copy of the template: a spare made ahead of need when one is ready."""
        return self.spares(server).take()

    def drop_database(self, database: PostgresDatabase) -> None:
        """Drop a database :meth:`new_database` gave (in the background when spares are kept);
        a server the test left paused is resumed first (a paused server never answers the drop)."""
        _resume(database.server)
        self.spares(database.server).give_back(database)

    def tx_database(self, server: PostgresHandle) -> PostgresDatabase:
        """One migrated database per server for ``postgres_tx`` (tests roll back, so it can be shared)."""
        key = id(server)
        if key not in self._tx_databases:
            self._tx_databases[key] = self.admin(server).create(self.template(server).name, "aegis_tx")
        return self._tx_databases[key]

    def tx_connection(self, server: PostgresHandle) -> Connection:
        """A connection to :meth:`tx_database`, kept open across tests (a login costs more
        than the 2 ms a rollback-mode test may take); replaced when closed or broken."""
        key = id(server)
        conn = self._tx_connections.get(key)
        if conn is None or conn.closed or conn.broken:
            conn = self._tx_connections[key] = self.tx_database(server).open()
        return conn

    def reset_tx_connection(self, server: PostgresHandle) -> None:
        """Roll back the test's transaction and reset session state (settings, prepared
        statements, temp tables) so the next test starts clean; drop the connection if
        that fails."""
        conn = self._tx_connections.get(id(server))
        if conn is None:
            return
        _resume(server)
        try:
            conn.rollback()
            conn.autocommit = True
            conn.execute("DISCARD ALL")
            conn.autocommit = False
        except psycopg.Error:
            self._tx_connections.pop(id(server), None)
            with contextlib.suppress(Exception):
                conn.close()

    def _drop_own_databases(self, server: PostgresHandle) -> None:
        """On a shared server: drop the session's ``postgres_tx`` database and template."""
        key = id(server)
        if (spares := self._spares.pop(key, None)) is not None:
            spares.close()
        if (conn := self._tx_connections.pop(key, None)) is not None:
            with contextlib.suppress(Exception):
                conn.close()
        admin = self.admin(server)
        for database, drop in (
            (self._tx_databases.pop(key, None), admin.drop),
            (self._templates.pop(key, None), admin.drop_template),
        ):
            if database is not None:
                with contextlib.suppress(psycopg.Error):
                    drop(database)

    def close(self) -> list[PostgresHandle]:
        """Remove every server (or, with keep, leave them running); return those left running.
        A server a test left paused is resumed first: dropping its databases would wait forever."""
        kept = []
        for server in self.servers:
            _resume(server)
            if server.shared:
                self._drop_own_databases(server)
                self._forget(server)
                continue  # not ours to stop or keep
            self._forget(server)
            if self._config.keep and server.is_running:
                kept.append(server)
                continue
            with contextlib.suppress(Exception):
                server.remove()
            release_port(server.port)  # leased by its start for restarts (pytest_aegis.ports)
        self.servers.clear()
        self._shared = None
        return kept


def _resume(server: PostgresHandle) -> None:
    """Resume ``server`` if a test left it paused (best effort: cleanup goes on either way)."""
    if server.is_paused:
        with contextlib.suppress(Exception):
            server.resume()
