"""The ``local`` backend: :class:`LocalBackend`, which starts each kind of server with this
package's modules (see the package's docstring)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar

from pytest_aegis.backends.base import Backend
from pytest_aegis.backends.local.binaries import find_nats_server, find_pg_bin_dir, nats_version
from pytest_aegis.backends.local.nats import LocalNatsProcess
from pytest_aegis.backends.local.postgres import LocalPostgres, PostgresServer
from pytest_aegis.config import AegisConfig
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.session import SessionState

__all__ = ["LocalBackend", "find_nats_server"]


class LocalBackend(Backend):
    """Servers as local processes; needs only the binaries (no Docker)."""

    name: ClassVar[str] = "local"

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        super().__init__(config, session)
        self.nats_bin = find_nats_server(config)
        if config.pg_bin_dir is not None:  # given, it must be right: checked now, not by a test
            find_pg_bin_dir(config.pg_bin_dir, config.origin("pg_bin_dir"))

    @functools.cached_property
    def nats_version(self) -> str:
        return nats_version(self.nats_bin)

    def describe(self) -> str:
        return f"local (nats-server {self.nats_version} at {self.nats_bin})"

    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> LocalNatsProcess:
        runtime = LocalNatsProcess(
            self.nats_bin,
            material,
            name=name,
            directory=directory,
            session=self.session,
            keep=self.config.keep,
            start_timeout=self.config.start_timeout,
        )
        runtime.start()
        return runtime

    @functools.cached_property
    def postgres(self) -> LocalPostgres:
        return LocalPostgres(self.config, self.session)

    def describe_postgres(self) -> str:
        return self.postgres.describe()

    def start_postgres(self, *, name: str) -> PostgresServer:
        return self.postgres.start(name=name)

    def close(self) -> None:
        if "postgres" in self.__dict__:
            self.postgres.close()
