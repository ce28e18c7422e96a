"""The Docker engine: connecting to it (or saying why not), its version, its networks.

docker-py and testcontainers are imported here and in the container modules
only, so the plugin loads (and the local backend works) without the ``docker``
extra installed.
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import warnings
from pathlib import Path
from typing import Any

from pytest_aegis.errors import BackendUnavailable

DEFAULT_SOCKET = Path("/var/run/docker.sock")
PING_TIMEOUT = 5
CALL_TIMEOUT = 600
INSTALL_HINT = "install the extra with `pip install 'pytest-aegis[docker]'` (testcontainers and docker)"
START_HINT = (
    "start an engine (e.g. `sudo systemctl start docker`, Docker Desktop, or on this project's dev "
    "machines `../shared/docker-sandbox/up.sh`), or point DOCKER_HOST at one "
    "(e.g. DOCKER_HOST=unix:///run/user/$UID/docker.sock for rootless Docker)"
)


def docker_sdk() -> Any:
    """docker-py (untyped; imported on demand so the plugin loads without the docker extra)."""
    return importlib.import_module("docker")


def engine_address() -> str:
    """Where docker-py will look for the engine: ``$DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def engine_configured() -> bool:
    """Cheap check (no connection): is there any engine we could talk to?"""
    return bool(os.environ.get("DOCKER_HOST")) or DEFAULT_SOCKET.exists()


def disable_ryuk_unless_asked() -> None:
    """We remove our containers ourselves (and the next session's sweep removes those of a killed
    session); Ryuk would also remove the containers of an ``--aegis-keep`` session, and cannot run
    where its image cannot be pulled.  So it is off unless TESTCONTAINERS_RYUK_DISABLED says otherwise."""
    if os.environ.get("TESTCONTAINERS_RYUK_DISABLED") is None:
        from testcontainers.core.config import testcontainers_config

        testcontainers_config.ryuk_disabled = True


def open_client(timeout: float) -> Any:
    """``docker.from_env`` (a ``docker.DockerClient``); raises docker-py's ``DockerException``.

    When the client fails inside its constructor (API version detection: a stale socket file, an
    engine that is down) docker-py leaves its socket to the garbage collector, which would warn at
    some later, unrelated moment (an error under ``-W error``, in whichever test runs next).  So the
    socket is collected here, quietly: the failure itself is the caller's to report."""
    docker = docker_sdk()
    try:
        return docker.from_env(timeout=int(max(timeout, 1)))
    except docker.errors.DockerException as exc:
        # The traceback holds the frames that hold the socket: keep only the message.
        failure = docker.errors.DockerException(str(exc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise failure


class Engine:
    """A connected Docker engine (one docker-py client per pytest process)."""

    def __init__(self, client: Any) -> None:  # a docker.DockerClient
        self.client = client

    @classmethod
    def connect(cls, timeout: float = PING_TIMEOUT) -> Engine:
        """Connect and ping, or raise :class:`BackendUnavailable` saying what is missing and how to fix it."""
        try:
            docker = docker_sdk()
            importlib.import_module("testcontainers.core.container")  # the container class
        except ImportError as exc:
            raise BackendUnavailable(f"the docker backend needs {exc.name}: {INSTALL_HINT}") from None
        address = engine_address()
        problem: object = None
        if address.startswith("unix://") and not Path(address.removeprefix("unix://")).exists():
            problem = "the socket does not exist"
        else:
            try:
                probe = open_client(timeout)  # a dead engine fails fast here
                try:
                    probe.ping()
                finally:
                    probe.close()
                # Long calls (image builds, stops with their grace period) need more; log streams
                # have no read timeout at all (docker-py lifts it for them).
                client = open_client(CALL_TIMEOUT)
            except docker.errors.DockerException as exc:
                problem = exc
        if problem is not None:
            raise BackendUnavailable(
                f"no Docker engine answers at {address} (DOCKER_HOST="
                f"{os.environ.get('DOCKER_HOST') or 'unset'}, default socket {DEFAULT_SOCKET}): {problem}\n"
                f"Hint: {START_HINT}"
            )
        disable_ryuk_unless_asked()
        return cls(client)

    @functools.cached_property
    def version(self) -> str:
        info: dict[str, Any] = self.client.version()
        return str(info.get("Version", "?"))

    @property
    def address(self) -> str:
        return str(self.client.api.base_url)

    @property
    def is_local(self) -> bool:
        """The engine runs on this machine (unix socket): host paths can be bind-mounted."""
        return self.address.startswith("http+docker://localhost")

    def has_network(self, name: str) -> bool:
        return bool(self.client.networks.list(names=[name]))

    def close(self) -> None:
        self.client.close()
