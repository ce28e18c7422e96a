"""The fixtures.  Thin: the logic lives in the modules named after each concept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client

from pytest_aegis.certs import AegisCA
from pytest_aegis.config import AegisConfig
from pytest_aegis.harness import get_harness
from pytest_aegis.nats_server import NatsServer
from pytest_aegis.nats_spec import NatsSpec, build_spec
from pytest_aegis.reporting import mark_used

SPEC = pytest.StashKey[NatsSpec]()
MARKER = "nats_secure"


def spec_for(item: pytest.Item) -> NatsSpec | None:
    """The validated spec of ``item``'s ``nats_secure`` marker (``None`` without one)."""
    if SPEC in item.stash:
        return item.stash[SPEC]
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER} takes keywords only, e.g. "
            f"@pytest.mark.{MARKER}(auth='token', tls=True); got positional {marker.args!r}"
        )
    item.stash[SPEC] = spec = build_spec(marker.kwargs, where=f"{item.nodeid}: @pytest.mark.{MARKER}")
    return spec


@pytest.fixture(scope="session")
def aegis_config(pytestconfig: pytest.Config) -> AegisConfig:
    """The effective pytest-aegis settings of this session."""
    return get_harness(pytestconfig).config


@pytest.fixture(scope="session")
def aegis_ca(pytestconfig: pytest.Config) -> AegisCA:
    """The session's certificate authority (fresh trustme CA, plus bad material for negative tests)."""
    return get_harness(pytestconfig).ca


@pytest.fixture(scope="session")
def nats_server(pytestconfig: pytest.Config) -> NatsServer:
    """A plain nats-server (no auth, no TLS) with JetStream, shared by the session."""
    return get_harness(pytestconfig).nats.get(NatsSpec.plain())


@pytest.fixture
def nats_secure(request: pytest.FixtureRequest) -> NatsServer:
    """The secured server described by the test's ``@pytest.mark.nats_secure(...)``.

    Without keywords (or without the marker): TLS + user/password + JetStream.
    Equal specs share one server per session.
    """
    spec = spec_for(request.node) or NatsSpec()
    return get_harness(request.config).nats.get(spec)


@pytest.fixture
def nats_server_factory(request: pytest.FixtureRequest) -> Callable[..., NatsServer]:
    """Start unshared servers: ``nats_server_factory(auth="token", tls=True)``.

    Each call starts a new server (stopped at session end); use it for tests
    that stop, kill or reconfigure their server.
    """
    harness = get_harness(request.config)

    def start(**spec: Any) -> NatsServer:
        server = harness.nats.start(build_spec(spec, where="nats_server_factory"))
        mark_used(request.node, server)
        return server

    return start


@pytest_asyncio.fixture
async def nats_client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """A connected nats-py client: to ``nats_secure`` when the test carries the
    marker, else to ``nats_server``.  Drained and closed after the test."""
    fixture = "nats_secure" if request.node.get_closest_marker(MARKER) else "nats_server"
    server: NatsServer = request.getfixturevalue(fixture)
    mark_used(request.node, server)
    nc = await server.connect()
    try:
        yield nc
    finally:
        if nc.is_connected:
            await nc.drain()
        await nc.close()


def nats_server_fixture(*, scope: str = "session", name: str | None = None, **spec: Any) -> Any:
    """Declare another server fixture in your conftest (a fixture factory)::

        nats_token = nats_server_fixture(auth="token", tls=True)

    The spec is validated when the fixture is first used; equal specs share a server.
    """
    built = build_spec(spec, where=f"nats_server_fixture({name or ''})")

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def _fixture(pytestconfig: pytest.Config) -> NatsServer:
        return get_harness(pytestconfig).nats.get(built)

    return _fixture
