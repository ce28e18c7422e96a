"""Where an instance of the service under test runs, as the backends see it: :class:`AppLaunch`
(what to run) in, :class:`AppRuntime` (the running thing: a process or a container) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_aegis.app.spec import AppSpec
from pytest_aegis.session import SessionState


class AppRuntime(Protocol):
    """Where an instance of the service runs: a local process (:class:`ManagedProcess`) or what a
    backend provides (a container).  ``start`` returns once ``ready`` matched a line (or at once
    without one); the lines up to then are in ``startup_lines``."""

    startup_lines: list[str]
    log_path: Path

    @property
    def pid(self) -> int | None: ...
    @property
    def is_running(self) -> bool: ...
    def start(self, timeout: float = 10.0) -> None: ...
    def stop(self, timeout: float = 10.0) -> int | None: ...
    def kill(self) -> int | None: ...
    def tail(self, lines: int = 50) -> list[str]: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...


@dataclass(frozen=True)
class AppLaunch:
    """What a backend needs to run one instance: its spec, the harness's environment for it
    (without ``os.environ``), its ready predicate, where its log goes, the rootdir (for an image
    built from the project's Dockerfile)."""

    name: str
    spec: AppSpec
    env: Mapping[str, str]
    ready: Callable[[str], bool] | None
    log_path: Path
    session: SessionState
    keep: bool
    rootdir: Path | None = None


AppLauncher = Callable[[AppLaunch], AppRuntime]
