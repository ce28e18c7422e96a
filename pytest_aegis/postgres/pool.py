"""The session's PostgreSQL servers: one shared server, started on first use.

Local backend only for now: the server is a child process of pytest.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import shutil
from pathlib import Path

from pytest_aegis.backends.base import BackendUnavailable
from pytest_aegis.config import AegisConfig
from pytest_aegis.postgres.binaries import PgBinaries, find_pg_binaries
from pytest_aegis.postgres.databases import PostgresDatabase, create_database, create_template
from pytest_aegis.postgres.datadir import (
    ServerUser,
    cached_cluster,
    pg_root,
    server_user,
    session_pg_dir,
    sweep_pg_root,
)
from pytest_aegis.postgres.migrations import parse_migrations
from pytest_aegis.postgres.server import PostgresServer
from pytest_aegis.session import SessionState

SUPPORTED_BACKENDS = ("auto", "local")


class PostgresPool:
    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        if config.backend not in SUPPORTED_BACKENDS:
            raise BackendUnavailable(
                f"PostgreSQL fixtures support only the local backend so far (aegis_backend={config.backend})"
            )
        self._config = config
        self._session = session
        self.migrations = (
            # a directory was made absolute (rootdir) by the plugin
            parse_migrations(config.pg_migrations, Path.cwd()) if config.pg_migrations else None
        )
        self._shared: PostgresServer | None = None
        self._templates: dict[int, PostgresDatabase] = {}
        self._tx_databases: dict[int, PostgresDatabase] = {}
        self.servers: list[PostgresServer] = []

    @functools.cached_property
    def binaries(self) -> PgBinaries:
        return find_pg_binaries(self._config.pg_bin_dir)

    @functools.cached_property
    def user(self) -> ServerUser:
        return server_user()

    @functools.cached_property
    def root(self) -> Path:
        root = pg_root(self._session.root, self.user)
        sweep_pg_root(root)
        return root

    def describe(self) -> str:
        return f"postgres {self.binaries.version} at {self.binaries.bin_dir}"

    def get(self) -> PostgresServer:
        """The shared server, started on first use (and again if a test killed it)."""
        if self._shared is None or not self._shared.is_running:
            self._shared = self.start(name="shared")
        return self._shared

    def start(self, *, name: str | None = None) -> PostgresServer:
        """A new server, not shared with anyone (stopped at session end)."""
        name = f"{name or 'pg'}-{len(self.servers) + 1}"
        cluster = cached_cluster(self.binaries, self.user, self.root, self._config.start_timeout)
        directory = session_pg_dir(self.root, self._session) / f"{name}-{secrets.token_hex(3)}"
        server = PostgresServer(
            self.binaries,
            cluster,
            name=name,
            directory=directory,
            log_dir=self._session.new_dir(f"postgres-{name}"),
            user=self.user,
            session=self._session,
            start_timeout=self._config.start_timeout,
        )
        server.prepare()
        self.servers.append(server)
        return server.start()

    def template(self, server: PostgresServer) -> PostgresDatabase:
        """``aegis_template`` on ``server``, with the migrations applied (made once per server)."""
        key = id(server)
        if key not in self._templates:
            self._templates[key] = create_template(server, self.migrations)
        return self._templates[key]

    def new_database(self, server: PostgresServer) -> PostgresDatabase:
        return create_database(server, self.template(server).name)

    def tx_database(self, server: PostgresServer) -> PostgresDatabase:
        """One migrated database per server for ``postgres_tx`` (tests roll back, so it can be shared)."""
        key = id(server)
        if key not in self._tx_databases:
            self._tx_databases[key] = create_database(
                server, self.template(server).name, prefix="aegis_tx"
            )
        return self._tx_databases[key]

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
        self.servers.clear()
        self._shared = None
        self._templates.clear()
        self._tx_databases.clear()
        if "root" in self.__dict__:
            shutil.rmtree(self.root / self._session.dir.name, ignore_errors=True)
