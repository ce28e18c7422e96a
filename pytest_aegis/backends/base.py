"""The interface every backend implements (local processes, docker, external)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the server modules import BackendUnavailable from here
    from pytest_aegis.nats_config import NatsMaterial
    from pytest_aegis.nats_server import NatsRuntime
    from pytest_aegis.postgres.handle import PostgresHandle


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says what is missing and how to get it."""


class Backend(Protocol):
    """Starts servers for the fixtures.  One instance per pytest session (per xdist worker)."""

    name: str

    def describe(self) -> str:
        """One line for the report header, e.g. ``local (nats-server 2.15.1 at /venv/bin/nats-server)``."""
        ...

    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> NatsRuntime:
        """Start a nats-server for ``material`` and return once it accepts clients."""
        ...

    def describe_postgres(self) -> str:
        """One line for the report header about the PostgreSQL servers this backend runs."""
        ...

    def start_postgres(self, *, name: str) -> PostgresHandle:
        """Start a PostgreSQL server (password auth, TCP on loopback) and return once it accepts
        connections.  ``remove()`` on the handle stops it and deletes its data."""
        ...

    def close(self) -> None:
        """Release what the backend holds (servers are stopped by their fixtures)."""
        ...
