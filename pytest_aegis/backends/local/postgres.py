"""One PostgreSQL server (a postmaster child process) and its handle.

Readiness comes from the server's own log line ("database system is ready to
accept connections", written to stderr, which :class:`ManagedProcess` drains).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
from pathlib import Path

from pytest_aegis.postgres.binaries import PgBinaries
from pytest_aegis.postgres.datadir import SUPERUSER, CachedCluster, ServerUser
from pytest_aegis.postgres.handle import PostgresHandle
from pytest_aegis.process import ManagedProcess, ProcessBacked, ServerStartError
from pytest_aegis.session import SessionState

LOOPBACK = "127.0.0.1"
READY = "database system is ready to accept connections"
PG_FATAL = ("FATAL:", "PANIC:", "ERROR:", "could not bind")
PORT_TAKEN = ("could not bind", "Address already in use")
PORT_ATTEMPTS = 3
MAX_SOCKET_DIR = 90
SERVER_SETTINGS = {
    # Durability is worthless for a test database and costs most of the write time.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": LOOPBACK,
    # Not "posix" (segments in /dev/shm that outlive a kill -9 of the postmaster): mmap'ed
    # files under the data directory go when the directory does.
    "dynamic_shared_memory_type": "mmap",
}


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (see :meth:`PostgresServer.start` for the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
            ready=lambda line: READY in line,
            log_path=self._log_path,
            session=self._session,
            env={**os.environ, "LC_ALL": "C"},
            cwd=self.directory,
            user=self._run_as.uid if foreign else None,
            group=self._run_as.gid if foreign else None,
            fatal_markers=PG_FATAL,
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

        The one place the harness cannot let a server choose its own port:
        PostgreSQL has no "port 0".  So we bind ``127.0.0.1:0``, close the socket
        and pass that port; should something else take it in between, the server
        fails with "could not bind ... Address already in use" and we retry with
        a new port, at most :data:`PORT_ATTEMPTS` times.
        """
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port()
            self._process = self._new_process()
            try:
                self._process.start(self._timeout)
                return self
            except ServerStartError as exc:
                if attempt == PORT_ATTEMPTS or not any(marker in str(exc) for marker in PORT_TAKEN):
                    raise
        raise AssertionError("unreachable")

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
        pid = self.pid
        if pid is not None and self.is_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends exit on their own."""
        self._process.kill()

    def keep_instructions(self) -> str:
        return (
            f"pid {self.pid}; password in {self._cluster.path / 'password'}; "
            f"data {self.data_dir}; stop with `kill -INT {self.pid}`"
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
