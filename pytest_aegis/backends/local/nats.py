"""nats-server as a child process of pytest: the local backend's :class:`NatsRuntime`.

Readiness comes from the server's own log ("Server is ready"), its ports are leased on its first
start and kept across restarts (:mod:`pytest_aegis.ports`), and the process is tied to pytest's
lifetime and recorded for the next session's sweep (see :mod:`pytest_aegis.process` and
:mod:`pytest_aegis.session`).
"""

from __future__ import annotations

from pathlib import Path
from signal import SIGHUP, Signals

from pytest_aegis.backends.local.store import DirectoryStore
from pytest_aegis.natsd.conf import render
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.startup import FATAL_MARKERS, StartingNats, readiness
from pytest_aegis.ports import RANDOM_PORT
from pytest_aegis.process import ManagedProcess, ProcessBacked
from pytest_aegis.session import SessionState


class LocalNatsProcess(StartingNats, ProcessBacked[ManagedProcess]):
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
        super().__init__(name, material, directory, start_timeout=start_timeout)
        self._config_path = directory / "nats-server.conf"
        self._listening = (RANDOM_PORT, RANDOM_PORT)  # the client and monitoring ports of its config
        self._process = ManagedProcess(
            f"nats-server[{name}]",
            [str(binary), "-c", str(self._config_path)],
            ready=readiness(material),
            log_path=directory / "nats-server.log",
            session=session,
            die_with_parent=not keep,
            fatal_markers=FATAL_MARKERS,
            hint=f"config: {self._config_path}; run `{binary} -c {self._config_path}` to see the error",
        )

    def start(self) -> None:
        # Leased the first time and kept by every later start; a reload keeps them too, as
        # nats-server cannot change a listening port on reload.
        self._lease_ports()
        self._listening = (self.port, self.monitor_port or RANDOM_PORT)
        self._write_config()
        self._process.start(self._timeout)
        self._note_startup(self._process.startup_lines)

    def _write_config(self) -> None:
        port, monitor_port = self._listening
        text = render(
            self._material,
            name=self.name,
            store_dir=self._directory / "jetstream",
            port=port,
            monitor_port=monitor_port,
            host=self.host,
        )
        self._config_path.write_text(text)

    def reload_config(self, *, signal: bool = True) -> None:
        """Rewrite the config from the material and, unless ``signal`` is false, send SIGHUP (what
        ``nats-server --signal reload`` sends)."""
        self._write_config()
        if signal:
            self._process.send_signal(SIGHUP)

    def signal(self, name: str) -> None:
        """Send the signal ``name`` (``"SIGUSR2"``: lame-duck mode) to the server's process."""
        self._process.send_signal(Signals[name])

    def stopped_store(self) -> DirectoryStore:
        """The JetStream store's files (the server must be stopped: it holds them open)."""
        if self.is_running:
            raise RuntimeError(
                f"nats-server[{self.name}] is running: stop() or kill() it before its store is touched"
            )
        return DirectoryStore(self._directory / "jetstream")

    def stop(self) -> None:
        self._process.stop()

    def kill(self) -> None:
        self._process.kill()

    def restart(self) -> None:
        self._process.stop()
        self.start()

    @property
    def is_paused(self) -> bool:
        return self._process.is_paused

    def pause(self) -> None:
        """SIGSTOP: the server answers nothing (its sockets stay open) until :meth:`resume`."""
        self._process.pause()

    def resume(self) -> None:
        self._process.resume()

    def keep_instructions(self) -> str:
        return f"pid {self.pid}; config {self._config_path}; stop with `kill {self.pid}`"
