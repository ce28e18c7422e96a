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
from pytest_aegis.faults.disk import PowerLoss, PowerLossDisk, cut_power
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
        #: The store's disk when the spec asks for power loss (mounted while the server runs).
        self._disk: PowerLossDisk | None = None
        if material.spec.power_loss:
            self._disk = PowerLossDisk(directory, name=name, session=session, keep=keep)

    def start(self) -> None:
        # Leased the first time and kept by every later start; a reload keeps them too, as
        # nats-server cannot change a listening port on reload.
        self._lease_ports()
        self._listening = (self.port, self.monitor_port or RANDOM_PORT)
        self._write_config()
        if self._disk is not None:
            self._disk.mount()
        self._process.start(self._timeout)
        self._note_startup(self._process.startup_lines)

    @property
    def _store_dir(self) -> Path:
        """Where the server keeps its store (the power-loss disk's mount point, with one)."""
        return self._disk.mountpoint if self._disk is not None else self._directory / "jetstream"

    def _write_config(self) -> None:
        port, monitor_port = self._listening
        text = render(
            self._material,
            name=self.name,
            store_dir=self._store_dir,
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
        return DirectoryStore(self._disk.live if self._disk is not None else self._store_dir)

    def stop(self) -> None:
        self._process.stop()
        self._unmount()

    def kill(self) -> None:
        self._process.kill()
        self._unmount()

    def power_loss(self) -> PowerLoss:
        """SIGKILL, and the store loses every write not yet fsynced (the spec's ``power_loss``)."""
        return cut_power(self._disk, f"nats-server[{self.name}]", self._process.kill)

    def _unmount(self) -> None:
        if self._disk is not None:
            self._disk.unmount()

    def restart(self) -> None:
        self.stop()
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
