"""Where a third-party server runs, as the backends see it: :class:`ServerLaunch` (what to run)
in, :class:`ServerRuntime` (a process, a container, or a server the harness only connects to) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_aegis.session import SessionState
from pytest_aegis.thirdparty.spec import ServerSpec


@dataclass(frozen=True)
class ServerLaunch:
    """One instance to run: its spec, the port leased for it, its own directory (``{dir}``), its
    ready predicate (from ``ready_pattern``), where its log goes."""

    name: str
    spec: ServerSpec
    port: int
    directory: Path
    ready: Callable[[str], bool] | None
    log_path: Path
    session: SessionState
    keep: bool
    env: Mapping[str, str]


class ServerRuntime(Protocol):
    """A running third-party server.  ``address``: where it listens when that is not the launch's
    port on 127.0.0.1 (an existing server of the external backend), else ``None``."""

    startup_lines: list[str]
    log_path: Path

    @property
    def address(self) -> tuple[str, int] | None: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def is_running(self) -> bool: ...
    @property
    def is_paused(self) -> bool: ...
    def start(self, timeout: float = 10.0) -> None: ...
    def stop(self, timeout: float = 10.0) -> int | None: ...
    def kill(self) -> int | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def tail(self, lines: int = 50) -> list[str]: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...
