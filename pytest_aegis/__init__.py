"""pytest-aegis: real, secured NATS servers (auth + TLS), PostgreSQL and your service under test
as pytest fixtures, with helpers that prove the negative cases.

Load the plugin with ``pytest -p pytest_aegis``.  Helpers and types for tests::

    from pytest_aegis import assert_connection_rejected, assert_permission_denied, NatsConnectError
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are (checked against _LAZY by tests/plugin/unit/test_public_api.py)
    from pytest_aegis import nats_auth as nats_auth
    from pytest_aegis.app.health import CustomProbe as CustomProbe
    from pytest_aegis.app.health import HttpGet as HttpGet
    from pytest_aegis.app.health import NatsRequest as NatsRequest
    from pytest_aegis.app.health import ReadyLine as ReadyLine
    from pytest_aegis.app.health import ServicePing as ServicePing
    from pytest_aegis.app.health import TcpConnect as TcpConnect
    from pytest_aegis.app.process import AppProcess as AppProcess
    from pytest_aegis.app.spec import AppSpec as AppSpec
    from pytest_aegis.assertions.audit import assert_event_persisted as assert_event_persisted
    from pytest_aegis.assertions.audit import assert_no_event_lost as assert_no_event_lost
    from pytest_aegis.assertions.jetstream import assert_no_acked_write_lost as assert_no_acked_write_lost
    from pytest_aegis.assertions.micro import assert_micro_ping as assert_micro_ping
    from pytest_aegis.assertions.micro import assert_micro_service as assert_micro_service
    from pytest_aegis.assertions.micro import micro_stats as micro_stats
    from pytest_aegis.assertions.migrations import assert_migrations_roundtrip as assert_migrations_roundtrip
    from pytest_aegis.assertions.refusal import AppRefusal as AppRefusal
    from pytest_aegis.assertions.refusal import assert_app_refuses_to_start as assert_app_refuses_to_start
    from pytest_aegis.assertions.security import assert_connection_rejected as assert_connection_rejected
    from pytest_aegis.assertions.security import assert_permission_denied as assert_permission_denied
    from pytest_aegis.assertions.security import assert_permitted as assert_permitted
    from pytest_aegis.assertions.service import ServiceInstance as ServiceInstance
    from pytest_aegis.assertions.service import assert_health_check as assert_health_check
    from pytest_aegis.assertions.service import assert_instance_registered as assert_instance_registered
    from pytest_aegis.assertions.service import assert_registration_expires as assert_registration_expires
    from pytest_aegis.assertions.service import assert_registry_roundtrip as assert_registry_roundtrip
    from pytest_aegis.assertions.streams import assert_consumer_drained as assert_consumer_drained
    from pytest_aegis.assertions.streams import stream_message_count as stream_message_count
    from pytest_aegis.backends.local.postgres import PostgresServer as PostgresServer
    from pytest_aegis.certs import AegisCA as AegisCA
    from pytest_aegis.errors import AegisError as AegisError
    from pytest_aegis.errors import BackendMisconfigured as BackendMisconfigured
    from pytest_aegis.errors import BackendUnavailable as BackendUnavailable
    from pytest_aegis.errors import ConfigError as ConfigError
    from pytest_aegis.errors import ExternalServerError as ExternalServerError
    from pytest_aegis.errors import LameDuckError as LameDuckError
    from pytest_aegis.errors import MigrationError as MigrationError
    from pytest_aegis.errors import NatsConnectError as NatsConnectError
    from pytest_aegis.errors import NatsReloadError as NatsReloadError
    from pytest_aegis.errors import PeerRemovalError as PeerRemovalError
    from pytest_aegis.errors import PlaintextRejected as PlaintextRejected
    from pytest_aegis.errors import PortRangeError as PortRangeError
    from pytest_aegis.errors import ProxyError as ProxyError
    from pytest_aegis.errors import ServerStartError as ServerStartError
    from pytest_aegis.errors import SpecError as SpecError
    from pytest_aegis.errors import TLSRejectedByServer as TLSRejectedByServer
    from pytest_aegis.errors import WaitTimeout as WaitTimeout
    from pytest_aegis.faults.disk import PowerLoss as PowerLoss
    from pytest_aegis.faults.proxy import Fault as Fault
    from pytest_aegis.faults.proxy import FaultProxy as FaultProxy
    from pytest_aegis.faults.targets import NatsFaultProxy as NatsFaultProxy
    from pytest_aegis.faults.targets import PostgresFaultProxy as PostgresFaultProxy
    from pytest_aegis.faults.targets import ServerFaultProxy as ServerFaultProxy
    from pytest_aegis.fixtures.app import app_fixture as app_fixture
    from pytest_aegis.fixtures.nats import nats_server_fixture as nats_server_fixture
    from pytest_aegis.fixtures.servers import server_fixture as server_fixture
    from pytest_aegis.natsd.cluster import NatsCluster as NatsCluster
    from pytest_aegis.natsd.nemesis import Nemesis as Nemesis
    from pytest_aegis.natsd.server import NatsServer as NatsServer
    from pytest_aegis.natsd.spec import NatsSpec as NatsSpec
    from pytest_aegis.natsd.store import StoreDamage as StoreDamage
    from pytest_aegis.postgres.handle import PostgresDatabase as PostgresDatabase
    from pytest_aegis.postgres.handle import PostgresHandle as PostgresHandle
    from pytest_aegis.thirdparty.server import ThirdPartyServer as ThirdPartyServer
    from pytest_aegis.thirdparty.spec import ServerSpec as ServerSpec
    from pytest_aegis.waiting import async_wait_until as async_wait_until
    from pytest_aegis.waiting import wait_until as wait_until

#: Each public name and the module it lives in.  Importing ``pytest_aegis`` (which loading the
#: plugin does) imports none of them: the heavy layers (nats-py, pydantic, trustme, psycopg,
#: docker) load only when a test or fixture needs them.
_LAZY = {
    "AegisCA": "pytest_aegis.certs",
    "AegisError": "pytest_aegis.errors",
    "Fault": "pytest_aegis.faults.proxy",
    "FaultProxy": "pytest_aegis.faults.proxy",
    "NatsCluster": "pytest_aegis.natsd.cluster",
    "Nemesis": "pytest_aegis.natsd.nemesis",
    "StoreDamage": "pytest_aegis.natsd.store",
    "PowerLoss": "pytest_aegis.faults.disk",
    "NatsFaultProxy": "pytest_aegis.faults.targets",
    "PostgresFaultProxy": "pytest_aegis.faults.targets",
    "AppProcess": "pytest_aegis.app.process",
    "AppRefusal": "pytest_aegis.assertions.refusal",
    "AppSpec": "pytest_aegis.app.spec",
    "BackendMisconfigured": "pytest_aegis.errors",
    "BackendUnavailable": "pytest_aegis.errors",
    "ConfigError": "pytest_aegis.errors",
    "ExternalServerError": "pytest_aegis.errors",
    "LameDuckError": "pytest_aegis.errors",
    "MigrationError": "pytest_aegis.errors",
    "NatsConnectError": "pytest_aegis.errors",
    "NatsReloadError": "pytest_aegis.errors",
    "PeerRemovalError": "pytest_aegis.errors",
    "NatsServer": "pytest_aegis.natsd.server",
    "PlaintextRejected": "pytest_aegis.errors",
    "PortRangeError": "pytest_aegis.errors",
    "ProxyError": "pytest_aegis.errors",
    "TLSRejectedByServer": "pytest_aegis.errors",
    "NatsSpec": "pytest_aegis.natsd.spec",
    "PostgresDatabase": "pytest_aegis.postgres.handle",
    "PostgresHandle": "pytest_aegis.postgres.handle",
    "PostgresServer": "pytest_aegis.backends.local.postgres",
    "ServerStartError": "pytest_aegis.errors",
    "ServiceInstance": "pytest_aegis.assertions.service",
    "SpecError": "pytest_aegis.errors",
    "WaitTimeout": "pytest_aegis.errors",
    "assert_app_refuses_to_start": "pytest_aegis.assertions.refusal",
    "assert_connection_rejected": "pytest_aegis.assertions.security",
    "assert_event_persisted": "pytest_aegis.assertions.audit",
    "assert_health_check": "pytest_aegis.assertions.service",
    "assert_instance_registered": "pytest_aegis.assertions.service",
    "assert_micro_ping": "pytest_aegis.assertions.micro",
    "assert_micro_service": "pytest_aegis.assertions.micro",
    "assert_no_event_lost": "pytest_aegis.assertions.audit",
    "assert_no_acked_write_lost": "pytest_aegis.assertions.jetstream",
    "assert_consumer_drained": "pytest_aegis.assertions.streams",
    "stream_message_count": "pytest_aegis.assertions.streams",
    "wait_until": "pytest_aegis.waiting",
    "async_wait_until": "pytest_aegis.waiting",
    "assert_migrations_roundtrip": "pytest_aegis.assertions.migrations",
    "assert_permission_denied": "pytest_aegis.assertions.security",
    "assert_permitted": "pytest_aegis.assertions.security",
    "assert_registration_expires": "pytest_aegis.assertions.service",
    "assert_registry_roundtrip": "pytest_aegis.assertions.service",
    "micro_stats": "pytest_aegis.assertions.micro",
    "nats_server_fixture": "pytest_aegis.fixtures.nats",
    "app_fixture": "pytest_aegis.fixtures.app",
    "NatsRequest": "pytest_aegis.app.health",
    "ServicePing": "pytest_aegis.app.health",
    "HttpGet": "pytest_aegis.app.health",
    "TcpConnect": "pytest_aegis.app.health",
    "ReadyLine": "pytest_aegis.app.health",
    "CustomProbe": "pytest_aegis.app.health",
    "ServerSpec": "pytest_aegis.thirdparty.spec",
    "ThirdPartyServer": "pytest_aegis.thirdparty.server",
    "ServerFaultProxy": "pytest_aegis.faults.targets",
    "server_fixture": "pytest_aegis.fixtures.servers",
}


def __getattr__(name: str) -> Any:
    if name == "nats_auth":
        return importlib.import_module("pytest_aegis.nats_auth")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_aegis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


# `pytest -p pytest_aegis` registers this module; it pulls in the hooks and fixtures.
pytest_plugins = (
    "pytest_aegis.plugin",
    "pytest_aegis.fixtures.core",
    "pytest_aegis.fixtures.nats",
    "pytest_aegis.fixtures.postgres",
    "pytest_aegis.fixtures.app",
    "pytest_aegis.fixtures.faults",
    "pytest_aegis.fixtures.cluster",
    "pytest_aegis.fixtures.servers",
)

__all__ = sorted([*_LAZY, "nats_auth"])
