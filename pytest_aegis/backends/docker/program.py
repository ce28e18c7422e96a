"""A program in a container whose readiness starts with a line of its output:
:class:`ContainerProgram`, the docker backend's counterpart of a local
:class:`~pytest_aegis.process.ManagedProcess` for the service under test and third-party servers.
Restarts reuse the container (same filesystem)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pytest_aegis.backends.docker.container import ContainerBacked, ContainerRun


class ContainerProgram(ContainerBacked):
    """``run`` started by the first :meth:`start` (again by the next ones), ready once ``ready``
    matches a line of this start's output (at once without it); the lines up to then are in
    :attr:`startup_lines`."""

    _run: ContainerRun

    def __init__(self, run: ContainerRun, ready: Callable[[str], bool] | None) -> None:
        self._run = run
        self._ready = ready
        self.log_path: Path = run.log_path
        self.startup_lines: list[str] = []

    def start(self, timeout: float = 10.0) -> None:
        if self._run.container is None:
            self._run.launch()
        else:
            self._run.start_again()
        self.startup_lines = []
        if self._ready is not None:
            self._run.wait_line(self._ready, 0, time.monotonic() + timeout, "its ready line")
            self.startup_lines = self._run.startup_lines

    def stop(self, timeout: float = 10.0) -> int | None:
        return self._run.stop(timeout)

    def kill(self) -> int | None:
        return self._run.kill()
