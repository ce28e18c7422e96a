"""How to run a service under test: :class:`AppSpec`.

Not tied to the reference service: any command works.  The harness gives the process the NATS
server's coordinates as environment variables (the names :meth:`NatsServer.env` produces,
renamed through ``env_map`` if the app wants others), waits for its ready line when it has one,
then for it to answer its health check.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

#: The reference service (``aegis-service``, in this repo's ``service/``), run from this interpreter.
REFERENCE_COMMAND: tuple[str, ...] = (sys.executable, "-m", "aegis_service")
REFERENCE_READY = r"^AEGIS-SERVICE READY (?P<json>\{.*\})$"
NO_APP_CONFIGURED = (
    "aegis_app: no service under test is configured, and the reference service (aegis-service) "
    "is not installed. Set aegis_app_command (ini), --aegis-app-command or AEGIS_APP_COMMAND to "
    "your service's command line (with aegis_app_health_subject and aegis_app_env as needed), or "
    "override the aegis_app_spec fixture with an AppSpec; see the docs' 'The service under test'."
)


def reference_installed() -> bool:
    """Whether the reference service (``aegis_service``) can be run by this interpreter."""
    return importlib.util.find_spec("aegis_service") is not None


@dataclass(frozen=True)
class AppSpec:
    """How to run a service under test.

    ``command``: argv; ``health_subject``: where it answers health checks;
    ``ready_pattern``: a regex for the line it prints when ready (a ``json``
    group may carry ``instanceId`` / ``httpUrl``), or ``None`` to rely on the
    health check alone; ``env``: extra variables; ``env_map``: rename the
    harness's variables for your app, e.g. ``{"MYAPP_NATS_URL": "AEGIS_NATS_URL"}``.
    """

    command: tuple[str, ...] = REFERENCE_COMMAND
    health_subject: str = "health.check"
    ready_pattern: str | None = REFERENCE_READY
    env: Mapping[str, str] = field(default_factory=dict)
    env_map: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0

    @classmethod
    def from_settings(cls, command: str | None, health_subject: str | None, env_map: str | None) -> AppSpec:
        """Build from the ``aegis_app_*`` settings (strings as in ini files).  Without a command the
        reference service runs, if it is installed; otherwise :class:`ValueError` says how to
        configure a service."""
        spec = cls()
        if not command and not reference_installed():
            raise ValueError(NO_APP_CONFIGURED)
        if command:
            spec = replace(spec, command=tuple(shlex.split(command)), ready_pattern=None)
        if health_subject:
            spec = replace(spec, health_subject=health_subject)
        if env_map:
            spec = replace(spec, env_map=parse_env_map(env_map))
        return spec


def parse_env_map(text: str) -> dict[str, str]:
    """``"APP_URL=AEGIS_NATS_URL APP_USER=AEGIS_NATS_USER"`` (spaces, commas or newlines) -> dict."""
    mapping = {}
    for item in re.split(r"[\s,]+", text.strip()):
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"aegis_app_env: expected NAME=AEGIS_VARIABLE pairs, got {item!r}")
        mapping[name] = source
    return mapping
