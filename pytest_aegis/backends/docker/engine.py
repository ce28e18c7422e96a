"""The Docker engine: finding it as the docker CLI does, connecting to it (or saying why not), its
version, its networks.

The engine is found as the docker CLI finds it (:func:`find_engine`): ``DOCKER_HOST``, else the
context ``DOCKER_CONTEXT`` names, else the ``currentContext`` of the CLI's config file
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``; Colima, Docker Desktop and Podman
machine each set one), read from the CLI's context store by docker-py's ``ContextAPI``; else the
default socket.  An engine found through a context is exported as ``DOCKER_HOST`` for the session,
so testcontainers, docker-py and ``docker compose`` all talk to the same one.

docker-py and testcontainers are imported here and in the container modules
only, so the plugin loads (and the local backend works) without the ``docker``
extra installed.
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    "(e.g. DOCKER_HOST=unix:///run/user/$UID/docker.sock for rootless Docker), or `docker context use` one"
)


def docker_sdk() -> Any:
    """docker-py (untyped; imported on demand so the plugin loads without the docker extra)."""
    return importlib.import_module("docker")


def cli_config_file(environ: Mapping[str, str] = os.environ) -> Path:
    """The docker CLI's config file: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def current_context(environ: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """The context the docker CLI would use (``None``: the built-in default) and where that was set."""
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    config = cli_config_file(environ)
    try:
        name = json.loads(config.read_text()).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return None, f"{config}: none"
    return (str(name), f"currentContext in {config}") if name and name != "default" else (None, str(config))


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine is (``url``), which setting said so, and every place looked at before."""

    url: str
    source: str
    looked: tuple[str, ...] = ()
    #: The docker CLI context it came from (``None``: DOCKER_HOST or the default socket).
    context: str | None = None
    tls: Any = field(default=None, repr=False)  # a context's docker.tls.TLSConfig


def find_engine(environ: Mapping[str, str] = os.environ) -> EngineAddress:
    """The engine's address, found as the docker CLI finds it (see the module's docstring)."""
    if environ.get("DOCKER_HOST"):
        return EngineAddress(environ["DOCKER_HOST"], "DOCKER_HOST")
    looked = ["DOCKER_HOST: unset"]
    name, origin = current_context(environ)
    if name is None:
        looked.append(f"DOCKER_CONTEXT: unset; current context: default ({origin})")
        return EngineAddress(f"unix://{DEFAULT_SOCKET}", "the default socket", tuple(looked))
    from docker.context import ContextAPI  # the docker extra: only when a context is named

    context = ContextAPI.get_context(name)
    source = f"context {name!r} ({origin})"
    if context is None or not context.Host:  # as the docker CLI, no fallback past a named context
        store = cli_config_file(environ).parent / "contexts" / "meta"
        return EngineAddress("", source, (*looked, f"{source}: not in the context store {store}"), name)
    return EngineAddress(str(context.Host), source, tuple(looked), name, context.TLSConfig)


def engine_configured() -> bool:
    """Cheap check (no connection, no docker-py): is there any engine we could talk to?"""
    return bool(os.environ.get("DOCKER_HOST") or current_context()[0]) or DEFAULT_SOCKET.exists()


def disable_ryuk_unless_asked() -> None:
    """We remove our containers ourselves (and the next session's sweep removes those of a killed
    session); Ryuk would also remove the containers of an ``--aegis-keep`` session, and cannot run
    where its image cannot be pulled.  So it is off unless TESTCONTAINERS_RYUK_DISABLED says otherwise."""
    if os.environ.get("TESTCONTAINERS_RYUK_DISABLED") is None:
        from testcontainers.core.config import testcontainers_config

        testcontainers_config.ryuk_disabled = True


def open_client(timeout: float, address: EngineAddress | None = None) -> Any:
    """A ``docker.DockerClient`` for ``address`` (default: ``docker.from_env``, DOCKER_HOST and
    its TLS variables); raises docker-py's ``DockerException``.

    When the client fails inside its constructor (API version detection: a stale socket file, an
    engine that is down) docker-py leaves its socket to the garbage collector, which would warn at
    some later, unrelated moment (an error under ``-W error``, in whichever test runs next).  So the
    socket is collected here, quietly: the failure itself is the caller's to report."""
    docker = docker_sdk()
    seconds = int(max(timeout, 1))
    try:
        if address is None or address.context is None:  # DOCKER_HOST (and its TLS variables) or none
            return docker.from_env(timeout=seconds)
        return docker.DockerClient(base_url=address.url, tls=address.tls or False, timeout=seconds)
    except docker.errors.DockerException as exc:
        # The traceback holds the frames that hold the socket: keep only the message.
        failure = docker.errors.DockerException(str(exc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise failure


class Engine:
    """A connected Docker engine (one docker-py client per pytest process)."""

    def __init__(self, client: Any, found: EngineAddress | None = None) -> None:  # a docker.DockerClient
        self.client = client
        #: Where it was found (``None``: made from a client, docker-py's defaults).
        self.found = found

    @classmethod
    def connect(cls, timeout: float = PING_TIMEOUT) -> Engine:
        """Connect and ping, or raise :class:`BackendUnavailable` saying what is missing and how to fix it."""
        try:
            docker = docker_sdk()
            importlib.import_module("testcontainers.core.container")  # the container class
        except ImportError as exc:
            raise BackendUnavailable(f"the docker backend needs {exc.name}: {INSTALL_HINT}") from None
        found = find_engine()
        address = found.url
        problem: object = None
        if not address:
            problem = "no such context (`docker context ls` lists them)"
        elif address.startswith("unix://") and not Path(address.removeprefix("unix://")).exists():
            problem = "the socket does not exist"
        else:
            try:
                probe = open_client(timeout, found)  # a dead engine fails fast here
                try:
                    probe.ping()
                finally:
                    probe.close()
                # Long calls (image builds, stops with their grace period) need more; log streams
                # have no read timeout at all (docker-py lifts it for them).
                client = open_client(CALL_TIMEOUT, found)
            except docker.errors.DockerException as exc:
                problem = exc
        if problem is not None:
            looked = "".join(f"\n  - {place}" for place in found.looked)
            raise BackendUnavailable(
                f"no Docker engine answers at {address or '?'} (from {found.source}): {problem}\n"
                f"Looked at:{looked or ' DOCKER_HOST'}\nHint: {START_HINT}"
            )
        if found.context is not None:  # testcontainers, docker compose: the same engine
            os.environ["DOCKER_HOST"] = address
        disable_ryuk_unless_asked()
        return cls(client, found)

    @functools.cached_property
    def version(self) -> str:
        """The engine's product and version: ``Docker 27.3.1``, ``Podman 4.3.1`` (Podman's
        Docker-compatible API names its components "Podman Engine")."""
        info: dict[str, Any] = self.client.version()
        names = " ".join(str(part.get("Name", "")) for part in info.get("Components") or [])
        product = "Podman" if "Podman" in names else "Docker"
        return f"{product} {info.get('Version', '?')}"

    @property
    def endpoint(self) -> str:
        """The address it was reached at and the setting that said so (``unix:///run/podman.sock
        from DOCKER_HOST``)."""
        if self.found is None or not self.found.url:
            return self.address
        return f"{self.found.url} from {self.found.source}"

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
