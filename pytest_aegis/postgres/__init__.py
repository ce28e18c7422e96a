"""PostgreSQL servers as fixtures : one concept per module.

* :mod:`~pytest_aegis.postgres.binaries`: finding ``postgres``/``initdb`` and their version
* :mod:`~pytest_aegis.postgres.datadir`: who runs the server, where its files live, the initdb cache
* :mod:`~pytest_aegis.postgres.handle`: what every server handle offers (any backend)
* :mod:`~pytest_aegis.postgres.server`: one local server process
* :mod:`~pytest_aegis.postgres.local`: the local backend's servers
* :mod:`~pytest_aegis.postgres.migrations`: ``aegis_pg_migrations`` (SQL directory or a function)
* :mod:`~pytest_aegis.postgres.databases`: the migrated template and per-test databases
* :mod:`~pytest_aegis.postgres.pool`: the session's servers
"""

from __future__ import annotations

from pytest_aegis.postgres.databases import PostgresDatabase
from pytest_aegis.postgres.handle import PostgresHandle
from pytest_aegis.postgres.migrations import MigrationError, MigrationSource
from pytest_aegis.postgres.pool import PostgresPool
from pytest_aegis.postgres.server import PostgresServer

__all__ = [
    "MigrationError",
    "MigrationSource",
    "PostgresDatabase",
    "PostgresHandle",
    "PostgresPool",
    "PostgresServer",
]
