"""PostgreSQL in a container: the docker backend's :class:`PostgresHandle`.

The image's own entrypoint makes the cluster (``POSTGRES_PASSWORD``: password
auth; ``PGPORT``: the port, with host networking).  On a first start it runs
initdb, starts a socket-only temporary server (which also logs "ready to
accept connections"), runs the init scripts, stops it and starts the real
server.  So readiness is: a "ready to accept connections" line *and* a real
TCP login with the password right after it; a line whose login is refused
(the temporary server listens on no TCP port) means "wait for the next one".
No polling: each probe follows a log line.

The data lives in the container's filesystem: ``restart()`` stops and starts
the same container (same port, same data); ``remove()`` removes it.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Self

from pytest_aegis.backends.docker.container import ContainerBacked, ContainerRun
from pytest_aegis.backends.docker.engine import Engine
from pytest_aegis.ports import LOOPBACK, start_on_free_port
from pytest_aegis.postgres.handle import CONNECT_TIMEOUT, PostgresHandle
from pytest_aegis.postgres.startup import FATAL_MARKERS, READY, SUPERUSER, TEST_SETTINGS, is_ready

#: The image's entrypoint reports its own errors in lower case too.
ENTRYPOINT_FATAL = (*FATAL_MARKERS, "error:")
CONTAINER_PORT = 5432


class DockerPostgres(ContainerBacked, PostgresHandle):
    """A PostgreSQL container (password auth over TCP on 127.0.0.1)."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        image: str,
        network: str,
        labels: dict[str, str],
        log_dir: Path,
        start_timeout: float,
    ) -> None:
        self.name = name
        self.host = LOOPBACK
        self.port = 0
        self.user = SUPERUSER
        self.password = secrets.token_urlsafe(18)
        self.version = "?"
        self.image = image
        self._engine = engine
        self._network = network
        self._labels = labels
        self._log_path = log_dir / "postgres.log"
        self._timeout = start_timeout
        self._run: ContainerRun | None = None

    def _new_run(self) -> ContainerRun:
        listen = "127.0.0.1" if self._network == "host" else "*"
        command = ["postgres", "-c", f"listen_addresses={listen}"]
        for key, value in TEST_SETTINGS.items():
            command += ["-c", f"{key}={value}"]
        env = {
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_USER": SUPERUSER,
            "POSTGRES_INITDB_ARGS": "--no-sync",
        }
        ports = {}
        if self._network == "host":
            env["PGPORT"] = str(self.port)
        else:
            ports = {CONTAINER_PORT: self.port}
        return ContainerRun(
            self._engine,
            name=f"postgres[{self.name}]",
            docker_name=f"aegis-postgres-{self.name}-{secrets.token_hex(3)}",
            image=self.image,
            image_setting="--aegis-docker-pg-image",
            command=command,
            env=env,
            labels=self._labels,
            network=self._network,
            ports=ports,
            log_path=self._log_path,
            fatal_markers=ENTRYPOINT_FATAL,
            hint=f"log {self._log_path}",
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        """A new container on a fresh port; retried (new port, new container) when the port was taken."""
        return start_on_free_port(self._start_on)

    def _start_on(self, port: int) -> Self:
        self.port = port
        self._run = self._new_run()
        self._run.launch_until(self._await_ready)
        return self

    def _await_ready(self) -> None:
        run = self._run
        assert run is not None
        deadline = time.monotonic() + self._timeout
        index = 0
        while True:
            index = run.wait_line(is_ready, index, deadline, f"'{READY}' with a TCP login")
            if self._login():
                return
            index += 1  # the entrypoint's temporary server (no TCP): the real one comes next

    def _login(self) -> bool:
        import psycopg  # the postgres extra: the backend itself loads without it

        try:
            with psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.OperationalError:
            return False
        self.version = str(row[0]).split()[0] if row else "?"
        return True

    def restart(self) -> Self:
        """Stop (fast shutdown) if running and start the same container again: same port, same data."""
        assert self._run is not None
        self._run.stop()
        self._run.start_again()
        self._await_ready()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """The image's stop signal (SIGINT in postgres images: fast shutdown), SIGKILL after ``timeout``."""
        if self._run is not None:
            self._run.stop(timeout)

    def kill(self) -> None:
        if self._run is not None:
            self._run.kill()

    def keep_instructions(self) -> str:
        return (
            f"container {self.container_name} (image {self.image}); DSN {self.dsn}; "
            f"stop with `docker rm -f {self.container_name}`"
        )
