"""pytest-aegis: real, secured NATS servers (auth + TLS) as pytest fixtures.

Load the plugin with ``pytest -p pytest_aegis``.  Helpers for tests::

    from pytest_aegis import (
    assert_connection_rejected,
    assert_permission_denied,
    assert_permitted,
)
"""

from __future__ import annotations

from pytest_aegis.app import AppProcess, AppSpec
from pytest_aegis.assertions.audit import assert_event_persisted, assert_no_event_lost
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
from pytest_aegis.certs import AegisCA
from pytest_aegis.fixtures import nats_server_fixture
from pytest_aegis.nats_connect import NatsConnectError
from pytest_aegis.nats_server import NatsServer
from pytest_aegis.nats_spec import NatsSpec
from pytest_aegis.postgres import PostgresDatabase, PostgresServer
from pytest_aegis.process import ServerStartError

# `pytest -p pytest_aegis` registers this module; it pulls in the hooks and fixtures.
pytest_plugins = ("pytest_aegis.plugin", "pytest_aegis.fixtures", "pytest_aegis.pg_fixtures")

__all__ = [
    "AegisCA",
    "AppProcess",
    "AppSpec",
    "NatsConnectError",
    "NatsServer",
    "NatsSpec",
    "PostgresDatabase",
    "PostgresServer",
    "ServerStartError",
    "ServiceInstance",
    "assert_connection_rejected",
    "assert_event_persisted",
    "assert_health_check",
    "assert_instance_registered",
    "assert_no_event_lost",
    "assert_permission_denied",
    "assert_permitted",
    "assert_registration_expires",
    "assert_registry_roundtrip",
    "nats_server_fixture",
]
