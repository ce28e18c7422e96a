"""What a PostgreSQL server is, on every backend (where it runs is in ``backends/<backend>/postgres.py``).

* :mod:`~pytest_aegis.postgres.handle`: what every server handle offers, and a database on it
* :mod:`~pytest_aegis.postgres.startup`: its ready line, fatal lines, superuser, test settings
* :mod:`~pytest_aegis.postgres.migrations`: ``aegis_pg_migrations`` (SQL directory or a function)
* :mod:`~pytest_aegis.postgres.databases`: the migrated template and per-test databases
* :mod:`~pytest_aegis.postgres.pool`: the session's servers

Everything that talks to a server needs psycopg 3, the ``postgres`` extra
(``pip install 'pytest-aegis[postgres]'``); without it the plugin loads, and the first
PostgreSQL fixture fails with :func:`require_psycopg`'s message.
"""

from __future__ import annotations

import importlib.util

from pytest_aegis.errors import BackendUnavailable, MigrationError
from pytest_aegis.postgres.handle import PostgresDatabase, PostgresHandle
from pytest_aegis.postgres.migrations import MigrationSource

__all__ = ["MigrationError", "MigrationSource", "PostgresDatabase", "PostgresHandle", "require_psycopg"]

EXTRA_HINT = "install the extra: pip install 'pytest-aegis[postgres]' (psycopg 3)"


def require_psycopg() -> None:
    """Raise :class:`BackendUnavailable` naming the extra when psycopg is not installed."""
    if importlib.util.find_spec("psycopg") is None:
        raise BackendUnavailable(f"PostgreSQL support needs psycopg, which is not installed: {EXTRA_HINT}")
