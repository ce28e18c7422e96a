"""The session's PostgreSQL servers (one shared, started on first use) and their databases.

Backend-neutral: servers come from :meth:`Backend.start_postgres`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_aegis.config import AegisConfig
from pytest_aegis.postgres.databases import PostgresDatabase, create_database, create_template
from pytest_aegis.postgres.handle import PostgresHandle
from pytest_aegis.postgres.migrations import parse_migrations

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
        self._templates: dict[int, PostgresDatabase] = {}
        self._tx_databases: dict[int, PostgresDatabase] = {}
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

    def discard(self, server: PostgresHandle) -> None:
        """Stop ``server`` now and forget it (its files or container are removed)."""
        with contextlib.suppress(ValueError):
            self.servers.remove(server)
        self._templates.pop(id(server), None)
        self._tx_databases.pop(id(server), None)
        server.remove()

    def template(self, server: PostgresHandle) -> PostgresDatabase:
        """``aegis_template`` on ``server``, with the migrations applied (made once per server)."""
        key = id(server)
        if key not in self._templates:
            self._templates[key] = create_template(server, self.migrations)
        return self._templates[key]

    def new_database(self, server: PostgresHandle) -> PostgresDatabase:
        return create_database(server, self.template(server).name)

    def tx_database(self, server: PostgresHandle) -> PostgresDatabase:
        """One migrated database per server for ``postgres_tx`` (tests roll back, so it can be shared)."""
        key = id(server)
        if key not in self._tx_databases:
            self._tx_databases[key] = create_database(server, self.template(server).name, prefix="aegis_tx")
        return self._tx_databases[key]

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.remove()
        self.servers.clear()
        self._shared = None
        self._templates.clear()
        self._tx_databases.clear()
