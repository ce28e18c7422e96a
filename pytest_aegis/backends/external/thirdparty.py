"""A third-party server the external backend only connects to: its URL comes from
``AEGIS_EXTERNAL_<NAME>_URL`` (``ServerSpec.external_variable``).  Without one, the tests that
use the server are skipped, saying which variable to set."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pytest_aegis.backends.external.target import redact_url, refuse
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable
from pytest_aegis.thirdparty.runtime import ServerLaunch


class ExternalServer:
    """An existing server at ``url``: readiness is probed as for any server; the lifecycle verbs
    raise :class:`~pytest_aegis.errors.ExternalServerError`."""

    def __init__(self, launch: ServerLaunch) -> None:
        variable = launch.spec.external_variable
        url = os.environ.get(variable, "")
        if not url:
            raise BackendUnavailable(
                f"the external backend has no server {launch.spec.name!r}: set {variable} to its URL "
                f"(e.g. {launch.spec.url.format(host='127.0.0.1', port=1234, dir='')})"
            )
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise BackendMisconfigured(
                f"{variable}={redact_url(url)!r}: expected a URL with a host and a port, e.g. "
                f"{launch.spec.url.format(host='127.0.0.1', port=1234, dir='')}"
            )
        self.address: tuple[str, int] | None = (parts.hostname, port)
        self._shown = f"the {launch.spec.name} server at {redact_url(url)}"
        self.log_path: Path = launch.log_path
        self.startup_lines: list[str] = []

    pid = None
    is_running = True
    is_paused = False

    def start(self, timeout: float = 10.0) -> None:
        """Nothing to run: the harness probes it as it would a server of its own."""

    def stop(self, timeout: float = 10.0) -> int | None:
        refuse("stop", self._shown)

    def kill(self) -> int | None:
        refuse("kill", self._shown)

    def pause(self) -> None:
        refuse("pause", self._shown)

    def resume(self) -> None:
        refuse("resume", self._shown)

    def tail(self, lines: int = 50) -> list[str]:
        return []

    def logs(self) -> str:
        return ""

    def log_size(self) -> int:
        return 0
