"""The local backend's PostgreSQL: this machine's binaries, clusters copied from the initdb cache."""

from __future__ import annotations

import functools
import secrets
import shutil
from pathlib import Path

from pytest_aegis.config import AegisConfig
from pytest_aegis.postgres.binaries import PgBinaries, find_pg_binaries
from pytest_aegis.postgres.datadir import (
    ServerUser,
    cached_cluster,
    pg_root,
    server_user,
    session_pg_dir,
    sweep_pg_root,
)
from pytest_aegis.postgres.server import PostgresServer
from pytest_aegis.session import SessionState


class LocalPostgres:
    """Starts postmasters as children of pytest (as ``nobody`` when pytest is root)."""

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        self._config = config
        self._session = session

    @functools.cached_property
    def binaries(self) -> PgBinaries:
        return find_pg_binaries(self._config.pg_bin_dir)

    @functools.cached_property
    def user(self) -> ServerUser:
        return server_user()

    @functools.cached_property
    def root(self) -> Path:
        root = pg_root(self._session.root, self.user, self._config.pg_data_dir)
        sweep_pg_root(root)
        return root

    def describe(self) -> str:
        return f"postgres {self.binaries.version} at {self.binaries.bin_dir}, data under {self.root}"

    def start(self, *, name: str) -> PostgresServer:
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
            keep=self._config.keep,
        )
        server.prepare()
        return server.start()

    def close(self) -> None:
        if "root" in self.__dict__ and not self._config.keep:  # kept servers still use their dirs
            shutil.rmtree(self.root / self._session.dir.name, ignore_errors=True)
