"""Short TTLs and heartbeats so registration tests run in seconds."""

from __future__ import annotations

import pytest

FAST = {"AEGIS_REGISTRATION_TTL": "2", "AEGIS_HEARTBEAT_INTERVAL": "0.25", "AEGIS_CONNECT_TIMEOUT": "10"}


@pytest.fixture
def fast_app(aegis_app_factory):
    """Start instances with a 2 s registration TTL and 0.25 s heartbeats."""

    def start(**kwargs):
        return aegis_app_factory(env={**FAST, **kwargs.pop("env", {})}, **kwargs)

    return start


@pytest.fixture
def audit_db(postgres_db):
    """A fresh database at the service's migration head: the template it is cloned from was
    migrated by ``aegis_pg_migrations = "aegis_service.migrations:upgrade"`` (pyproject.toml)."""
    from aegis_service.migrations import current_version, head

    assert current_version(postgres_db.dsn) == head(), "is aegis_pg_migrations set in pyproject.toml?"
    return postgres_db


@pytest.fixture
def audit_stack(nats_server_factory, audit_db, fast_app):
    """``audit_stack(dsn=None, **env)``: the service on its own JetStream server (the AUDIT stream and its
    durable consumer are per server) with ``AEGIS_DATABASE_URL`` = a fresh migrated database."""
    from audit_support import FAST_AUDIT, AuditStack

    def start(dsn=None, **env):
        dsn = dsn or audit_db.dsn
        server = nats_server_factory(jetstream=True)
        app = fast_app(nats=server, env={"AEGIS_DATABASE_URL": dsn, **FAST_AUDIT, **env})
        return AuditStack(server, dsn, app)

    return start
