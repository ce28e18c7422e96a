"""The session-wide state of the plugin: config, session dir, backend, CA, servers.

One :class:`Harness` per pytest process, kept in ``config.stash``.  Everything
heavy is made on first use, so a session that uses no fixture starts nothing.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import pytest

from pytest_aegis.config import AegisConfig
from pytest_aegis.matrix.record import Recorder
from pytest_aegis.reporting import LogSource
from pytest_aegis.session import SessionState, SweepReport

if TYPE_CHECKING:  # made on first use: loading the plugin imports none of them
    from pytest_aegis.app.spec import AppSpec
    from pytest_aegis.backends.base import Backend
    from pytest_aegis.certs import AegisCA
    from pytest_aegis.natsd.pool import NatsPool
    from pytest_aegis.natsd.server import NatsServer
    from pytest_aegis.postgres.pool import PostgresPool  # needs psycopg (the postgres extra)
    from pytest_aegis.thirdparty.spec import ServerSpec

HARNESS = pytest.StashKey["Harness"]()
#: How many of a test's apps start at once (the independent ones of a dependency wave).
APP_STARTERS = 4


class KeptServer(Protocol):
    """What the ``--aegis-keep`` summary prints about a server left running."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    def keep_instructions(self) -> str: ...
    def env(self) -> dict[str, str]: ...


class Harness:
    def __init__(self, config: AegisConfig) -> None:
        self.config = config
        self.session = SessionState()
        self.kept: list[KeptServer] = []
        self.swept: SweepReport | None = None
        #: The security matrix: what this process's tests proved (merged from workers under xdist).
        self.matrix = Recorder()
        #: The apps ``aegis_apps`` declares, by name (read once, when the session is configured).
        self.apps: Mapping[str, AppSpec] = {}
        #: The third-party servers ``aegis_servers`` declares, by name (read once, likewise).
        self.servers: Mapping[str, ServerSpec] = {}

    @functools.cached_property
    def backend(self) -> Backend:
        from pytest_aegis.backends import select_backend

        return select_backend(self.config, self.session)

    @functools.cached_property
    def ca(self) -> AegisCA:
        from pytest_aegis.certs import AegisCA

        return AegisCA(self.session.new_dir("ca"))

    @functools.cached_property
    def nats(self) -> NatsPool:
        return self.backend.nats_pool(
            lambda: self.ca, keep=self.config.keep, connect_deadline=self.config.start_timeout
        )

    @functools.cached_property
    def postgres(self) -> PostgresPool:
        from pytest_aegis.postgres import require_psycopg

        require_psycopg()
        from pytest_aegis.postgres.pool import PostgresPool

        return PostgresPool(self.config, self.backend)

    def notices(self) -> list[str]:
        """What the backend has to say at the end of the session (nothing if it was never made)."""
        return self.backend.notices() if "backend" in self.__dict__ else []

    @property
    def backend_is_eager(self) -> bool:
        """The configured backend is made when the session starts (``BackendEntry.eager``)."""
        from pytest_aegis.backends import BACKENDS

        entry = BACKENDS.get(self.config.backend)
        return entry is not None and entry.eager

    def shared_nats(self) -> list[NatsServer]:
        """The shared NATS servers started so far (none, and nothing imported, before the first)."""
        return self.nats.shared() if "nats" in self.__dict__ else []

    def log_sources(self) -> list[LogSource]:
        sources: list[LogSource] = []
        if "nats" in self.__dict__:
            sources += [server for server in self.nats.servers if server.is_running]
        if "postgres" in self.__dict__:
            sources += [server for server in self.postgres.servers if server.is_running]
        return sources

    @functools.cached_property
    def app_starter(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads that start a test's apps in parallel.  They live until :meth:`close` (after
        every test's apps were stopped): a child's PR_SET_PDEATHSIG fires when the *thread* that
        spawned it ends, not only the process."""
        return concurrent.futures.ThreadPoolExecutor(APP_STARTERS, thread_name_prefix="aegis-app-start")

    def close(self) -> None:
        """Stop what is running (unless kept) and remove the session directory."""
        if "app_starter" in self.__dict__:  # the apps it spawned were stopped by their tests
            self.app_starter.shutdown(wait=False)
        if "nats" in self.__dict__:
            from pytest_aegis.natsd.monitor import close_monitors  # loaded with the NATS layer

            close_monitors()
            self.kept += self.nats.close()
        if "postgres" in self.__dict__:
            self.kept += self.postgres.close()
        if "backend" in self.__dict__:
            self.backend.close()
        if self.kept:
            self.session.keep()
        self.session.close()


def get_harness(config: pytest.Config) -> Harness:
    return config.stash[HARNESS]
