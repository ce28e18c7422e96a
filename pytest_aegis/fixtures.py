"""The fixtures.  Thin: the logic lives in the modules named after each concept."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client

from pytest_aegis.app import AppProcess, AppSpec
from pytest_aegis.backends import BackendUnavailable
from pytest_aegis.certs import AegisCA
from pytest_aegis.config import AegisConfig
from pytest_aegis.harness import Harness, get_harness
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


def skip_unless_served(harness: Harness, spec: NatsSpec) -> None:
    """Skip the test when the backend cannot give it a server of ``spec`` (external: the
    server is what it is; see :meth:`ExternalBackend.cannot_serve`)."""
    cannot_serve = getattr(harness.backend, "cannot_serve", None)
    if cannot_serve is not None and (reason := cannot_serve(spec)):
        pytest.skip(reason)


def pytest_sessionstart(session: pytest.Session) -> None:
    """external backend: the session's owner (not an xdist worker) connects before any test
    runs, so it knows which streams existed before the session (it deletes only newer ones)."""
    harness = get_harness(session.config)
    if harness.config.backend == "external" and not hasattr(session.config, "workerinput"):
        with contextlib.suppress(BackendUnavailable):  # each test that needs it reports the error
            if (own_session := getattr(harness.backend, "own_session", None)) is not None:
                own_session()


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
    harness = get_harness(request.config)
    skip_unless_served(harness, spec)
    return harness.nats.get(spec)


@pytest.fixture
def nats_server_factory(request: pytest.FixtureRequest) -> Callable[..., NatsServer]:
    """Start unshared servers: ``nats_server_factory(auth="token", tls=True)``.

    Each call starts a new server (stopped at session end); use it for tests
    that stop, kill or reconfigure their server.
    """
    harness = get_harness(request.config)

    def start(**spec: Any) -> NatsServer:
        built = build_spec(spec, where="nats_server_factory")
        skip_unless_served(harness, built)
        server = harness.nats.start(built)
        mark_used(request.node, server)
        return server

    return start


@pytest.fixture
def aegis_nats(request: pytest.FixtureRequest) -> NatsServer:
    """The NATS server this test targets: ``nats_secure`` when the test carries
    the marker, else ``nats_server``.  ``nats_client`` and ``aegis_app`` use it."""
    fixture = "nats_secure" if request.node.get_closest_marker(MARKER) else "nats_server"
    server: NatsServer = request.getfixturevalue(fixture)
    mark_used(request.node, server)
    return server


@pytest_asyncio.fixture
async def nats_client(aegis_nats: NatsServer) -> AsyncIterator[Client]:
    """A connected nats-py client: to ``nats_secure`` when the test carries the
    marker, else to ``nats_server``.  Drained and closed after the test."""
    nc = await aegis_nats.connect()
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

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload, untyped-decorator]
    def _fixture(pytestconfig: pytest.Config) -> NatsServer:
        return get_harness(pytestconfig).nats.get(built)

    return _fixture


@pytest.fixture(scope="session")
def aegis_app_spec(aegis_config: AegisConfig) -> AppSpec:
    """How ``aegis_app`` runs the service under test.  Override this fixture
    (or set ``aegis_app_command`` / ``aegis_app_health_subject`` / ``aegis_app_env``)
    to test your own service."""
    try:
        return AppSpec.from_settings(
            aegis_config.app_command, aegis_config.app_health_subject, aegis_config.app_env
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture
def aegis_app_factory(
    request: pytest.FixtureRequest, aegis_app_spec: AppSpec, aegis_nats: NatsServer
) -> Iterator[Callable[..., AppProcess]]:
    """Start instances of the service under test, wired to the test's NATS server:
    ``aegis_app_factory(service_name=None, instance_id=None, env=None, nats=None)``.
    All instances of one test share a service name unless told otherwise; all
    are stopped after the test."""
    harness = get_harness(request.config)
    default_name = f"svc-{secrets.token_hex(3)}"
    started: list[AppProcess] = []

    def start(
        *,
        service_name: str | None = None,
        instance_id: str | None = None,
        env: dict[str, str] | None = None,
        nats: NatsServer | None = None,
    ) -> AppProcess:
        app = AppProcess(
            aegis_app_spec,
            nats or aegis_nats,
            session=harness.session,
            service_name=service_name or default_name,
            instance_id=instance_id,
            env=env,
            keep=harness.config.keep,
            # a backend that runs the service itself (docker: a container) offers app_launcher
            launcher=getattr(harness.backend, "app_launcher", None),
            rootdir=request.config.rootpath,
        )
        started.append(app)
        mark_used(request.node, app)
        return app.start()

    yield start
    for app in started:
        if not harness.config.keep:
            app.stop()


@pytest.fixture
def aegis_app(aegis_app_factory: Callable[..., AppProcess]) -> AppProcess:
    """The service under test, started against the test's NATS server (per its
    ``nats_secure`` marker, else ``nats_server``) and answering its health check."""
    return aegis_app_factory()
