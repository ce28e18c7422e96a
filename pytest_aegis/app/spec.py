"""How to run a service under test: :class:`AppSpec`.

Not tied to the reference service: any command works.  The harness gives the process the NATS
server's coordinates as environment variables (the names :meth:`NatsServer.env` produces,
renamed through ``env_map`` if the app wants others), waits for its ready line when it has one,
then for it to answer its health check.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_aegis.app.health import Health, ReadyLine, health_for_subject
from pytest_aegis.config import DEFAULT_APP_START_TIMEOUT
from pytest_aegis.errors import SpecError
from pytest_aegis.natsd.server import ENV_NAMES

#: An app's ``image`` meaning: the one ``--aegis-docker-app-image`` names, else built from the
#: rootdir's Dockerfile.
DOCKERFILE = "Dockerfile"
#: The entry point group where an installed package declares apps (``app``: the default one).
ENTRY_POINTS = "pytest_aegis.apps"
NO_APP_CONFIGURED = (
    "aegis_app: no service under test is configured, and no installed package declares one (an "
    f"entry point named 'app' in the group {ENTRY_POINTS}, as the reference service aegis-service "
    "does). Set aegis_app_command (ini), --aegis-app-command or AEGIS_APP_COMMAND to your "
    "service's command line (with aegis_app_health_subject and aegis_app_env as needed), or "
    "override the aegis_app_spec fixture with an AppSpec; see the docs' 'The service under test'."
)


#: What the harness tells the service about itself (besides the NATS server's ``AEGIS_NATS_*``).
APP_VARIABLES = (
    "AEGIS_SERVICE_NAME",
    "AEGIS_INSTANCE_ID",
    "AEGIS_HEALTH_SUBJECT",
    "AEGIS_HTTP_BIND",
    "AEGIS_HTTP_PORT",
    "AEGIS_DATABASE_URL",
)
#: Every variable the harness can give a service: what ``aegis_app_env`` may rename.
HARNESS_VARIABLES = (*(f"AEGIS_NATS_{name}" for name in ENV_NAMES), *APP_VARIABLES)
#: The name of the app ``aegis_app`` runs (``aegis_app_spec``); declared apps have their own.
DEFAULT_APP = "app"
#: What an app's name may be: it names fixtures' arguments, logs and directories.
APP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: A command line's first word that means "the interpreter running pytest".
PYTHONS = ("{python}", "python", "python3")


@dataclass(frozen=True)
class AppSpec:
    """How to run a service under test.

    ``command``: argv; ``health_subject``: where it answers health checks;
    ``ready_pattern``: a regex for the line it prints when ready (a ``json``
    group may carry ``instanceId`` / ``httpUrl``), or ``None`` to rely on the
    health check alone; ``env``: extra variables; ``env_map``: rename the
    harness's variables for your app, e.g. ``{"MYAPP_NATS_URL": "AEGIS_NATS_URL"}``;
    ``start_timeout``: seconds it may take to answer healthy; ``cwd``: where it runs (``None``:
    pytest's working directory); ``name``: which app this is when a test runs several
    (``aegis_app_factory(app=name)``), also its instances' log label; ``health``: its health
    contract (:mod:`pytest_aegis.app.health`: ``NatsRequest``, ``ServicePing``, ``HttpGet``,
    ``TcpConnect``, ``ReadyLine``), default the one ``health_subject`` means; ``depends_on``: the
    names of apps (in ``aegis_apps``) that must be running before it starts; its ``env`` values may
    name their handles, ``{orders.http_url}``.
    """

    command: tuple[str, ...] = ()
    health_subject: str = "health.check"
    ready_pattern: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    env_map: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = DEFAULT_APP_START_TIMEOUT
    cwd: Path | None = None
    name: str = DEFAULT_APP
    health: Health | None = None
    depends_on: tuple[str, ...] = ()
    image: str | None = None

    def __post_init__(self) -> None:
        if not APP_NAME.match(self.name):
            raise SpecError(
                f"AppSpec(name={self.name!r}): an app's name starts with a letter and has only "
                "letters, digits, '-' and '_'"
            )
        if isinstance(self.health, ReadyLine) and not self.ready_pattern:
            raise SpecError(
                f"app {self.name!r}: health=ready (the ready line alone) needs a ready_pattern; "
                "give one, or another health contract"
            )
        if self.ready_pattern:
            try:
                re.compile(self.ready_pattern)
            except re.error as exc:
                raise SpecError(f"app {self.name!r}: ready pattern {self.ready_pattern!r}: {exc}") from None

    @property
    def contract(self) -> Health:
        """Its health contract: ``health``, else the one ``health_subject`` means."""
        return self.health or health_for_subject(self.health_subject)

    @classmethod
    def from_settings(
        cls,
        command: str | None,
        health_subject: str | None,
        env_map: str | None,
        *,
        start_timeout: float | None = None,
        rootdir: Path | None = None,
        installed: AppSpec | None = None,
    ) -> AppSpec:
        """Build from the ``aegis_app_*`` settings (strings as in ini files), over ``installed``
        (the default app an installed package declares, if any).  A command runs in ``rootdir``
        (so relative paths in it are the project's), with ``{python}`` (or a bare ``python``) the
        interpreter running pytest and ``{rootdir}`` the rootdir, as a local process on every
        backend.  Without a command the installed app runs; without either, :class:`ValueError`
        says how to configure a service."""
        renamed = parse_env_map(env_map) if env_map else None  # a bad value first: it was given
        if not command and installed is None:
            raise ValueError(NO_APP_CONFIGURED)
        spec = installed or cls()
        if command:
            spec = replace(
                spec, command=command_line(command, rootdir), ready_pattern=None, cwd=rootdir, image=None
            )
        if health_subject:
            spec = replace(spec, health_subject=health_subject)
        if renamed is not None:
            spec = replace(spec, env_map=renamed)
        if start_timeout is not None:
            spec = replace(spec, start_timeout=start_timeout)
        return spec


def command_line(command: str, rootdir: Path | None) -> tuple[str, ...]:
    """``command`` split as a shell would, ``{python}`` / ``{rootdir}`` filled in."""
    words = shlex.split(command)
    if words and words[0] in PYTHONS:
        words[0] = sys.executable
    root = str(rootdir) if rootdir is not None else "."
    return tuple(word.replace("{python}", sys.executable).replace("{rootdir}", root) for word in words)


def parse_env_map(text: str) -> dict[str, str]:
    """``"APP_URL=AEGIS_NATS_URL APP_USER=AEGIS_NATS_USER"`` (spaces, commas or newlines) -> dict;
    :class:`ValueError` on a malformed pair or a source that is not one of :data:`HARNESS_VARIABLES`."""
    mapping = {}
    for item in re.split(r"[\s,]+", text.strip()):
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"aegis_app_env: expected NAME=AEGIS_VARIABLE pairs, got {item!r}")
        if source not in HARNESS_VARIABLES:
            raise ValueError(
                f"aegis_app_env: {item!r}: {source} is not a variable the harness gives a service; "
                f"the harness's variables: {', '.join(HARNESS_VARIABLES)}"
            )
        mapping[name] = source
    return mapping
