"""PostgreSQL as child processes of pytest: the local backend's :class:`PostgresHandle`
(:class:`PostgresServer`, one postmaster) and :class:`LocalPostgres`, which starts them from this
machine's binaries on clusters copied from the initdb cache (:mod:`.datadir`).

Readiness comes from the server's own log line ("database system is ready to accept
connections", written to stderr, which :class:`ManagedProcess` drains).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
from pathlib import Path

from pytest_aegis.backends.local.binaries import PgBinaries, find_pg_binaries
from pytest_aegis.backends.local.datadir import (
    CachedCluster,
    ServerUser,
    cached_cluster,
    pg_root,
    server_user,
    session_pg_dir,
    sweep_pg_root,
)
from pytest_aegis.config import AegisConfig
from pytest_aegis.ports import LOOPBACK, start_on_free_port
from pytest_aegis.postgres.handle import PostgresHandle
from pytest_aegis.postgres.startup import FATAL_MARKERS, SUPERUSER, TEST_SETTINGS, is_ready
from pytest_aegis.process import ManagedProcess, ProcessBacked
from pytest_aegis.session import SessionState

MAX_SOCKET_DIR = 90
SERVER_SETTINGS = {
    **TEST_SETTINGS,
    "listen_addresses": LOOPBACK,
    # Not "posix" (segments in /dev/shm that outlive a kill -9 of the postmaster): mmap'ed
    # files under the data directory go when the directory does.
    "dynamic_shared_memory_type": "mmap",
}


class PostgresServer(ProcessBacked[ManagedProcess], PostgresHandle):
    """A local postmaster (the local backend's :class:`PostgresHandle`)."""

    def __init__(
        self,
        binaries: PgBinaries,
        cluster: CachedCluster,
        *,
        name: str,
        directory: Path,
        log_dir: Path,
        user: ServerUser,
        session: SessionState,
        start_timeout: float,
        keep: bool = False,
    ) -> None:
        self.name = name
        self.host = LOOPBACK
        self.port = 0
        self.user = SUPERUSER
        self.password = cluster.password
        self.version = binaries.version
        self.cache_dir = cluster.path
        self.cache_hit = not cluster.created
        self.directory = directory
        self.data_dir = directory / "data"
        self.socket_dir = directory / "sock"
        self._binaries = binaries
        self._cluster = cluster
        self._run_as = user
        self._session = session
        self._timeout = start_timeout
        self._keep = keep
        self._log_path = log_dir / "postgres.log"
        self._process = self._new_process()

    def _new_process(self) -> ManagedProcess:
        argv = [
            str(self._binaries.postgres),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            # Clients here use TCP; skip the unix socket rather than fail on a path
            # longer than sun_path allows (107 bytes with ".s.PGSQL.<port>").
            str(self.socket_dir) if len(str(self.socket_dir)) <= MAX_SOCKET_DIR else "",
        ]
        for key, value in SERVER_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        foreign = self._run_as.foreign
        return ManagedProcess(
            f"postgres[{self.name}]",
            argv,
            ready=is_ready,
            log_path=self._log_path,
            session=self._session,
            env={**os.environ, "LC_ALL": "C"},
            cwd=self.directory,
            user=self._run_as.uid if foreign else None,
            group=self._run_as.gid if foreign else None,
            fatal_markers=FATAL_MARKERS,
            die_with_parent=not self._keep,
            hint=f"data dir {self.data_dir}; log {self._log_path}",
        )

    # -- lifecycle ---------------------------------------------------------

    def prepare(self) -> None:
        """Lay out the server directory: a copy of the cached cluster and a socket dir."""
        self.directory.mkdir(mode=0o700)
        self._cluster.copy_to(self.data_dir, self._run_as)
        self.socket_dir.mkdir(mode=0o700)
        self._run_as.own(self.directory)

    def start(self) -> PostgresServer:
        """Start on a fresh port and return once the server accepts connections.

        PostgreSQL has no "port 0", so the port comes from :func:`start_on_free_port`: should
        something take it before the postmaster binds it, the start is tried again on another.
        """
        return start_on_free_port(self._start_on)

    def _start_on(self, port: int) -> PostgresServer:
        self.port = port
        self._process = self._new_process()
        self._process.start(self._timeout)
        return self

    def restart(self) -> PostgresServer:
        """Stop (fast shutdown) if running and start again on the same port, with the same data."""
        self.stop()
        self._process = self._new_process()
        self._process.start(self._timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint, exit); SIGKILL after ``timeout``.

        Not SIGTERM: that is PostgreSQL's *smart* shutdown, which waits for every
        client to disconnect on its own.
        """
        self._process.resume()  # a stopped postmaster would take the SIGINT only once continued
        pid = self.pid
        if pid is not None and self.is_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends exit on their own (continued
        first when the server was paused, so they can notice)."""
        self._process.kill()

    @property
    def is_paused(self) -> bool:
        return self._process.is_paused

    def pause(self) -> None:
        """SIGSTOP the postmaster and all its processes (backends, checkpointer, ...): no query is
        answered and no connection accepted until :meth:`resume`; connections stay open."""
        self._process.pause()

    def resume(self) -> None:
        self._process.resume()

    def keep_instructions(self) -> str:
        return (
            f"pid {self.pid}; password in {self._cluster.path / 'password'}; "
            f"data {self.data_dir}; stop with `kill -INT {self.pid}`"
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class LocalPostgres:
    """Starts postmasters as children of pytest (as ``nobody`` when pytest is root)."""

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        self._config = config
        self._session = session

    @functools.cached_property
    def binaries(self) -> PgBinaries:
        return find_pg_binaries(self._config.pg_bin_dir, self._config.origin("pg_bin_dir"))

    @functools.cached_property
    def user(self) -> ServerUser:
        return server_user()

    @functools.cached_property
    def root(self) -> Path:
        root = pg_root(self._session.root, self.user, self._config.pg_data_dir)
        sweep_pg_root(root)
        return root

    def describe(self) -> str:
        return f"postgres {self.binaries.version} at {self.binaries.bin_dir}, data under {self.root}"

    def start(self, *, name: str) -> PostgresServer:
        cluster = cached_cluster(self.binaries, self.user, self.root, self._config.start_timeout)
        directory = session_pg_dir(self.root, self._session) / f"{name}-{secrets.token_hex(3)}"
        server = PostgresServer(
            self.binaries,
            cluster,
            name=name,
            directory=directory,
            log_dir=self._session.new_dir(f"postgres-{name}"),
            user=self.user,
            session=self._session,
            start_timeout=self._config.start_timeout,
            keep=self._config.keep,
        )
        server.prepare()
        return server.start()

    def close(self) -> None:
        if "root" in self.__dict__ and not self._config.keep:  # kept servers still use their dirs
            shutil.rmtree(self.root / self._session.dir.name, ignore_errors=True)
