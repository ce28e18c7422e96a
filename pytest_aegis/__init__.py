"""pytest-aegis: real, secured NATS servers (auth + TLS), PostgreSQL and your service under test
as pytest fixtures, with helpers that prove the negative cases.

Load the plugin with ``pytest -p pytest_aegis``.  Helpers and types for tests::

    from pytest_aegis import assert_connection_rejected, assert_permission_denied, NatsConnectError
"""

from __future__ import annotations

from pytest_aegis import nats_auth
from pytest_aegis.app.process import AppProcess
from pytest_aegis.app.spec import AppSpec
from pytest_aegis.assertions.audit import assert_event_persisted, assert_no_event_lost
from pytest_aegis.assertions.refusal import AppRefusal, assert_app_refuses_to_start
from pytest_aegis.assertions.security import (
    assert_connection_rejected,
    assert_permission_denied,
    assert_permitted,
)
from pytest_aegis.assertions.service import (
    ServiceInstance,
    assert_health_check,
    assert_instance_registered,
    assert_registration_expires,
    assert_registry_roundtrip,
)
from pytest_aegis.backends.local.postgres import PostgresServer
from pytest_aegis.certs import AegisCA
from pytest_aegis.errors import (
    AegisError,
    BackendUnavailable,
    ConfigError,
    ExternalServerError,
    MigrationError,
    NatsConnectError,
    ServerStartError,
    SpecError,
    WaitTimeout,
)
from pytest_aegis.fixtures.nats import nats_server_fixture
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.postgres.handle import PostgresDatabase, PostgresHandle

# `pytest -p pytest_aegis` registers this module; it pulls in the hooks and fixtures.
pytest_plugins = (
    "pytest_aegis.plugin",
    "pytest_aegis.fixtures.core",
    "pytest_aegis.fixtures.nats",
    "pytest_aegis.fixtures.postgres",
    "pytest_aegis.fixtures.app",
)

__all__ = [
    "AegisCA",
    "AegisError",
    "AppProcess",
    "AppRefusal",
    "AppSpec",
    "BackendUnavailable",
    "ConfigError",
    "ExternalServerError",
    "MigrationError",
    "NatsConnectError",
    "NatsServer",
    "NatsSpec",
    "PostgresDatabase",
    "PostgresHandle",
    "PostgresServer",
    "ServerStartError",
    "ServiceInstance",
    "SpecError",
    "WaitTimeout",
    "assert_app_refuses_to_start",
    "assert_connection_rejected",
    "assert_event_persisted",
    "assert_health_check",
    "assert_instance_registered",
    "assert_no_event_lost",
    "assert_permission_denied",
    "assert_permitted",
    "assert_registration_expires",
    "assert_registry_roundtrip",
    "nats_auth",
    "nats_server_fixture",
]
