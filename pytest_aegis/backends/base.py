"""The contract every backend implements (local processes, docker, external), declared.

:class:`Backend` names every capability the fixtures and pools use.  The abstract ones each
backend must provide (start a NATS server, start a PostgreSQL server, describe itself); the
others have the default that suits a backend running servers it configures, and a backend
overrides what differs: the external backend cannot serve every spec, brings its server's own
credentials, and notes the server's state when the session starts; the docker backend runs the
service under test in a container.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendUnavailable
from pytest_aegis.session import SessionState

if TYPE_CHECKING:
    from pytest_aegis.app.runtime import AppLaunch, AppRuntime
    from pytest_aegis.certs import AegisCA
    from pytest_aegis.natsd.material import NatsMaterial
    from pytest_aegis.natsd.pool import NatsPool
    from pytest_aegis.natsd.server import NatsRuntime
    from pytest_aegis.natsd.spec import NatsSpec
    from pytest_aegis.postgres.handle import PostgresHandle
    from pytest_aegis.thirdparty.runtime import ServerLaunch, ServerRuntime

__all__ = ["Backend", "BackendUnavailable"]


class Backend(ABC):
    """Starts servers for the fixtures.  One instance per pytest session (per xdist worker)."""

    #: The ``--aegis-backend`` value that selects it (see :data:`pytest_aegis.backends.BACKENDS`).
    name: ClassVar[str]

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        self.config = config
        self.session = session

    # -- what every backend provides ---------------------------------------------------------

    @abstractmethod
    def describe(self) -> str:
        """One line for the report header, e.g. ``local (nats-server 2.15.1 at /venv/bin/nats-server)``."""

    @abstractmethod
    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> NatsRuntime:
        """Start a nats-server for ``material`` and return once it accepts clients."""

    @abstractmethod
    def describe_postgres(self) -> str:
        """One line for the report header about the PostgreSQL servers this backend runs."""

    @abstractmethod
    def start_postgres(self, *, name: str) -> PostgresHandle:
        """Start a PostgreSQL server (password auth, TCP on loopback) and return once it accepts
        connections.  ``remove()`` on the handle stops it and deletes its data."""

    # -- capabilities with a default ---------------------------------------------------------

    def cannot_serve(self, spec: NatsSpec) -> str | None:
        """Why this backend cannot give a test a server of ``spec`` (the skip reason), or ``None``.
        Default: every spec can be served (the backend configures its servers)."""
        return None

    def cannot_cluster(self) -> str | None:
        """Why this backend cannot start a NATS cluster (the skip reason), or ``None``.  Default:
        it can (its servers' configs are rendered by the harness, routes on 127.0.0.1)."""
        return None

    def nats_material(self, spec: NatsSpec, directory: Path, ca: Callable[[], AegisCA]) -> NatsMaterial:
        """The credentials and certificates of a server of ``spec``.  Default: made for the spec,
        certificates from the session CA (``ca()``, made on first use)."""
        from pytest_aegis.natsd.material import prepare

        return prepare(spec, directory, ca() if spec.tls else None)

    def nats_pool(self, ca: Callable[[], AegisCA], *, keep: bool, connect_deadline: float) -> NatsPool:
        """The session's pool of NATS servers (it starts them with :meth:`start_nats` and hands
        out the handles).  Default: a :class:`~pytest_aegis.natsd.pool.NatsPool`."""
        from pytest_aegis.natsd.pool import NatsPool

        return NatsPool(self, self.session, ca, keep=keep, connect_deadline=connect_deadline)

    def app_launcher(self, launch: AppLaunch) -> AppRuntime:
        """Where an instance of the service under test runs.  Default: a child process of pytest."""
        from pytest_aegis.backends.local.app import local_launcher

        return local_launcher(launch)

    def server_runtime(self, launch: ServerLaunch) -> ServerRuntime:
        """Where a third-party server runs.  Default: a child process of pytest running the spec's
        binary (:class:`~pytest_aegis.errors.BackendUnavailable` when it is not installed)."""
        from pytest_aegis.backends.local.thirdparty import local_server

        return local_server(launch)

    def own_session(self) -> None:  # noqa: B027 (a hook: most backends need nothing)
        """Called once when the session starts, by the process that owns the session (not an xdist
        worker), for backends registered as ``eager``.  Default: nothing."""

    def notices(self) -> list[str]:
        """Lines for the end of the session's report (e.g. what the backend could not do).
        Default: none."""
        return []

    def close(self) -> None:  # noqa: B027 (a hook: most backends hold nothing)
        """Release what the backend holds (servers are stopped by their pools).  Default: nothing."""
