"""One container whose readiness and log come from its own output.

:class:`ContainerRun` is the docker backend's counterpart of
:class:`~pytest_aegis.process.ManagedProcess`: the container is a
testcontainers ``DockerContainer`` (created, given its files with
``put_archive`` before it starts, then started), its output is followed on a
background thread into a log file (so failure reports show it, as for a local
process), and :meth:`ContainerRun.wait_line` returns the moment a line
matches: no fixed sleeps and no once-a-second log polling.  A restart starts
the same container again (same filesystem: data and stores survive), attached
before it starts so no line is missed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aegis.backends.docker.engine import Engine
from pytest_aegis.backends.docker.files import FileSpec, Mount, tar_of
from pytest_aegis.backends.docker.logs import LogFollower
from pytest_aegis.errors import BackendUnavailable, ServerStartError
from pytest_aegis.process import log_file_size, read_log

if TYPE_CHECKING:
    from docker.models.containers import Container

__all__ = ["ContainerBacked", "ContainerRun", "FileSpec", "Mount", "tar_of"]


class ContainerRun:
    """One container of the session, created from a testcontainers ``DockerContainer``.

    ``network``: ``"host"`` (no published ports; the server is told its port on its command line
    or in its config) or ``"bridge"`` (``ports`` maps container ports to the host ports published
    on 127.0.0.1).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        docker_name: str,
        image: str,
        image_setting: str,
        command: Sequence[str] | None,
        env: dict[str, str],
        labels: dict[str, str],
        network: str,
        log_path: Path,
        ports: dict[int, int] | None = None,
        files: Sequence[FileSpec] = (),
        mounts: Sequence[Mount] = (),
        fatal_markers: Sequence[str] = ("[FTL]", "[ERR]", "FATAL", "PANIC"),
        hint: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.docker_name = docker_name
        self.image = image
        self.log_path = log_path
        self.startup_lines: list[str] = []
        self._engine = engine
        self._image_setting = image_setting
        self._command = list(command) if command is not None else None
        self._env = env
        self._labels = labels
        self._network = network
        self._ports = ports or {}
        self._files = list(files)
        self._mounts = list(mounts)
        self._fatal = tuple(fatal_markers)
        self._hint = hint
        self._extra = extra or {}
        self.container: Container | None = None
        self._follower: LogFollower | None = None
        self._since: float | None = None  # where this run's log starts (start_again: its time)
        self._pid: int | None = None
        self._paused = False

    # -- starting --------------------------------------------------------------

    def launch(self) -> LogFollower:
        """Create the container, put its files in, start it and follow its output."""
        from docker.errors import DockerException, ImageNotFound
        from testcontainers.core.container import DockerContainer

        tc = DockerContainer(
            self.image,
            command=self._command,  # type: ignore[arg-type]
            env=dict(self._env),
            name=self.docker_name,
        )
        for spec in self._files:
            tc.with_copy_into_container(spec.content, spec.path, spec.mode)
        for mount in self._mounts:
            tc.with_volume_mapping(str(mount.host), mount.container, mount.mode)
        for container_port, host_port in self._ports.items():
            tc.ports[f"{container_port}/tcp"] = ("127.0.0.1", host_port)  # type: ignore[assignment]
        # An explicit network: testcontainers otherwise guesses one (docker-in-docker detection).
        tc.with_kwargs(labels=self._labels, network=self._network, **self._extra)
        try:
            tc.start()
        except ImageNotFound as exc:
            raise BackendUnavailable(
                f"image {self.image} is not on the Docker engine and could not be pulled ({exc}); "
                f"pull or build it, or choose another with {self._image_setting}"
            ) from None
        except DockerException as exc:
            if tc._container is not None:
                with contextlib.suppress(DockerException):
                    tc._container.remove(force=True)
            tc.get_docker_client().client.close()
            raise self.error(f"the engine refused to create or start the container: {exc}") from None
        # testcontainers made a docker client for this container: use the session's from now on.
        self.container = self._engine.client.containers.prepare_model(tc.get_wrapped_container().attrs)
        tc.get_docker_client().client.close()
        self._pid, self._paused = None, False
        self._follower = self._follow()  # from the log's beginning: nothing it printed is missed
        return self._follower

    def launch_until(self, ready: Callable[[], None]) -> None:
        """:meth:`launch`, then ``ready()`` (which raises :class:`ServerStartError` if the server
        does not get ready); a container that did not get ready is removed."""
        try:
            self.launch()
            ready()
        except ServerStartError:
            self.remove()
            raise

    def put_files(self, files: Sequence[FileSpec]) -> None:
        assert self.container is not None
        if not self.container.put_archive("/", tar_of(files)):
            raise self.error("could not copy files into the container")

    def start_again(self) -> LogFollower:
        """Start the (stopped) container again: same filesystem, same ports."""
        from docker.errors import DockerException

        assert self.container is not None
        since = time.time()  # this start's lines only (the engine timestamps each line, same clock)
        try:
            self.container.start()
        except DockerException as exc:
            raise self.error(f"the engine refused to start the container again: {exc}") from None
        self._pid, self._paused = None, False
        self._follower = self._follow(since)
        return self._follower

    def _follow(self, since: float | None = None) -> LogFollower:
        """Follow the container's output (docker-py lifts the client's read timeout for this
        stream, so a quiet server is not taken for a dead one)."""
        assert self.container is not None
        self._since = since
        stream = self.container.logs(stream=True, follow=True, stdout=True, stderr=True, since=since)
        return LogFollower(stream, self.log_path, self.name)

    def wait_line(self, predicate: Callable[[str], bool], start: int, timeout_at: float, what: str) -> int:
        """Index of the next line (from ``start``) matching ``predicate``; raise
        :class:`ServerStartError` (with the log) when the container exits or the time is up."""
        follower = self._follower
        assert follower is not None
        try:
            index = follower.wait_line(predicate, start, timeout_at)
        except TimeoutError:
            self.kill()
            raise self.error(f"no {what} before the start timeout") from None
        self.startup_lines = follower.lines[: (index + 1) if index is not None else None]
        if index is None:
            code = self.exit_code()
            raise self.error(f"exited with code {code} before {what}", exit_code=code)
        return index

    def _catch_up(self) -> None:
        """Once the container's output stream ended, complete it from the engine's log (see
        :meth:`LogFollower.catch_up`)."""
        from docker.errors import DockerException

        follower = self._follower
        if follower is None or self.container is None:
            return
        follower.join(1.0)
        if not follower.eof:
            return
        with contextlib.suppress(DockerException, OSError):
            raw = self.container.logs(stdout=True, stderr=True, since=self._since)
            follower.catch_up([line.rstrip("\r") for line in raw.decode("utf-8", "replace").splitlines()])

    def error(self, reason: str, *, exit_code: int | None = None) -> ServerStartError:
        self._catch_up()
        hint = f"container {self.container.name if self.container else '(not created)'}, image {self.image}"
        if self._hint:
            hint += f"; {self._hint}"
        return ServerStartError(self.name, reason, self.tail(40), hint, self._fatal, exit_code=exit_code)

    # -- lifecycle ---------------------------------------------------------------

    def exit_code(self, timeout: float = 10.0) -> int | None:
        from docker.errors import DockerException

        if self.container is None:
            return None
        try:
            result: dict[str, Any] = self.container.wait(timeout=timeout)
        except (DockerException, OSError):
            return None
        finally:
            if self._follower is not None:
                self._follower.join()
            self._catch_up()
        return int(result.get("StatusCode", -1))

    def stop(self, timeout: float = 10.0) -> int | None:
        """The image's stop signal (SIGTERM unless the image says otherwise), SIGKILL after ``timeout``."""
        from docker.errors import DockerException

        if self.container is None or not self.is_running:
            return self.exit_code() if self.container is not None else None
        self.resume()  # not every engine lets a paused container take its stop signal
        with contextlib.suppress(DockerException):
            self.container.stop(timeout=max(1, round(timeout)))
        return self.exit_code()

    def kill(self) -> int | None:
        """SIGKILL, as a crash would (a paused container dies without running again)."""
        from docker.errors import DockerException

        if self.container is None:
            return None
        with contextlib.suppress(DockerException):  # 409: it is not running
            self.container.kill()
        if self._paused:  # Docker thaws the container it killed; an engine that does not, we do
            self._paused = False
            with contextlib.suppress(DockerException):
                self.container.unpause()
        return self.exit_code()

    def signal(self, sig: str) -> None:
        """Send ``sig`` (e.g. ``"SIGHUP"``) to the container's main process through the engine."""
        from docker.errors import DockerException

        if self.container is None or not self.is_running:
            raise RuntimeError(f"{self.name} is not running: nothing to signal")
        try:
            self.container.kill(signal=sig)
        except DockerException as exc:
            raise RuntimeError(f"{self.name}: the engine refused to send {sig}: {exc}") from None

    # -- pausing -----------------------------------------------------------------

    @property
    def is_paused(self) -> bool:
        return self._paused and self.is_running

    def pause(self) -> None:
        """The engine's pause (the cgroup freezer): every process of the container stops, its
        sockets stay open.  Returns once the engine has frozen it."""
        from docker.errors import DockerException

        if self.container is None or not self.is_running:
            raise RuntimeError(f"{self.name} is not running: nothing to pause")
        try:
            self.container.pause()
        except DockerException as exc:
            raise RuntimeError(f"{self.name}: the engine refused to pause the container: {exc}") from None
        self._paused = True

    def resume(self) -> None:
        """The engine's unpause (nothing when not paused)."""
        from docker.errors import DockerException

        if not self._paused or self.container is None:
            return
        try:
            self.container.unpause()
        except DockerException as exc:
            if self.is_running and self._engine_says_paused():
                raise RuntimeError(f"{self.name}: the engine refused to unpause it: {exc}") from None
        self._paused = False

    def _engine_says_paused(self) -> bool:
        """The engine's own view (a 409 "not paused": someone else unpaused it, or it exited)."""
        from docker.errors import DockerException

        assert self.container is not None
        try:
            self.container.reload()
        except DockerException:
            return False
        return bool(self.container.attrs.get("State", {}).get("Paused"))

    def remove(self) -> None:
        """Force-remove the container (paused or not: the engine kills it either way)."""
        from docker.errors import DockerException

        self._paused = False
        if self.container is not None:
            with contextlib.suppress(DockerException):
                self.container.remove(force=True, v=True)
            if self._follower is not None:
                self._follower.join()

    # -- inspection -------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Its output stream is open: the container's main process runs (no engine round trip)."""
        return self._follower is not None and not self._follower.eof

    @property
    def pid(self) -> int | None:
        """The host PID of the container's main process (the engine runs on this machine)."""
        if self.container is None or not self.is_running:
            return None
        if self._pid is None:
            with contextlib.suppress(Exception):
                self.container.reload()
                self._pid = int(self.container.attrs["State"]["Pid"]) or None
        return self._pid

    @property
    def container_name(self) -> str | None:
        return self.container.name if self.container is not None else None

    def tail(self, lines: int = 50) -> list[str]:
        return self._follower.tail(lines) if self._follower is not None else []

    def logs(self) -> str:
        return read_log(self.log_path)

    def log_size(self) -> int:
        return log_file_size(self.log_path)


class ContainerBacked:
    """Mixin for handles whose lifetime is one :class:`ContainerRun` (``self._run``; ``None``
    until the first start): removal and inspection."""

    _run: ContainerRun | None

    def remove(self) -> None:
        if self._run is not None:
            self._run.remove()

    @property
    def pid(self) -> int | None:
        """The container's main process as the host sees it; ``None`` when not running."""
        return self._run.pid if self._run is not None else None

    @property
    def is_running(self) -> bool:
        return self._run is not None and self._run.is_running

    @property
    def is_paused(self) -> bool:
        return self._run is not None and self._run.is_paused

    def pause(self) -> None:
        """Freeze the container (the engine's pause) until :meth:`resume`; its sockets stay open."""
        if self._run is None:
            raise RuntimeError("the container was never started: nothing to pause")
        self._run.pause()

    def resume(self) -> None:
        if self._run is not None:
            self._run.resume()

    @property
    def container_name(self) -> str | None:
        return self._run.container_name if self._run is not None else None

    def tail(self, lines: int = 50) -> list[str]:
        return self._run.tail(lines) if self._run is not None else []

    def logs(self) -> str:
        """The container's whole output (all its starts), as copied to the log file."""
        return self._run.logs() if self._run is not None else ""

    def log_size(self) -> int:
        return self._run.log_size() if self._run is not None else 0
