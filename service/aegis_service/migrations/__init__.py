"""The service's database schema as versioned SQL files, and the runner that applies them.

Point pytest-aegis at it so every test database starts migrated::

    [tool.pytest.ini_options]
    aegis_pg_migrations = "aegis_service.migrations:upgrade"

or run ``python -m aegis_service migrate up|down [--steps N]`` with ``AEGIS_DATABASE_URL`` set.
"""

from __future__ import annotations

from aegis_service.migrations.runner import (
    Migration,
    MigrationError,
    current_version,
    downgrade,
    head,
    load_migrations,
    upgrade,
)

#: Tables the service needs; readiness checks they exist.
REQUIRED_TABLES = (
    "schema_migrations",
    "outbox_events",
    "audit_events",
    "audit_dead_letters",
    "access_grants",
)

__all__ = [
    "REQUIRED_TABLES",
    "Migration",
    "MigrationError",
    "current_version",
    "downgrade",
    "head",
    "load_migrations",
    "upgrade",
]
