"""The plugin's settings: one frozen :class:`AegisConfig`, read once per session.

Each setting comes from its CLI flag, else its ini key, else its environment variable, else the
default (pytest-asyncio's convention: CLI default ``None`` falls back to ini).  Every fact is
stated once: a setting's default is its :class:`AegisConfig` field's default, its flag, ini key
and env variable are derived from the field's name (``start_timeout`` ->
``--aegis-start-timeout`` / ``aegis_start_timeout`` / ``AEGIS_START_TIMEOUT``), and its valid
values from the field's type.  Bad values raise :class:`~pytest_aegis.errors.ConfigError` naming
the setting, the value and the valid values; the plugin turns it into ``pytest.UsageError``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_aegis.errors import ConfigError

BackendName = Literal["auto", "local", "docker", "external"]
DockerNetwork = Literal["bridge", "host"]
#: The security cases ``--aegis-require`` can demand (see :mod:`pytest_aegis.matrix.report`).
RequiredCase = Literal["auth", "tls", "mtls", "permissions", "app-refusal"]
Kind = Literal["text", "bool", "seconds", "count", "path", "choice", "choices"]
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

#: The largest value a count setting takes (more spare databases only cost memory).
MAX_COUNT = 64
#: Seconds a server may take to become ready (and a harness connection to succeed).
DEFAULT_START_TIMEOUT = 20.0
#: Seconds the service under test may take to become healthy.
DEFAULT_APP_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class AegisConfig:
    """The effective settings of this session (the defaults are the plugin's defaults)."""

    backend: BackendName = "auto"
    nats_bin: Path | None = None
    keep: bool = False
    start_timeout: float = DEFAULT_START_TIMEOUT
    app_command: str | None = None
    app_health_subject: str = "health.check"
    app_env: str | None = None
    app_start_timeout: float = DEFAULT_APP_START_TIMEOUT
    apps: str | None = None
    servers: str | None = None
    pg_bin_dir: Path | None = None
    pg_migrations: str | None = None
    pg_spare_databases: int = 2
    pg_data_dir: Path | None = None
    docker_nats_image: str = "nats:2.11"
    docker_pg_image: str = "postgres:16"
    docker_app_image: str | None = None
    docker_network: DockerNetwork = "bridge"
    external_nats_url: str | None = None
    external_nats_user: str | None = None
    external_nats_password: str | None = None
    external_nats_token: str | None = None
    external_nats_creds: Path | None = None
    external_nats_ca: Path | None = None
    external_pg_dsn: str | None = None
    security_report: Path | None = None
    require: tuple[RequiredCase, ...] = ()
    #: For each setting that was set: where (``--aegis-nats-bin``, ``ini aegis_nats_bin`` or
    #: ``env AEGIS_NATS_SERVER_BIN``), so that an error names what the user actually set.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def resolve(
        cls, cli: Callable[[Setting], Any], ini: Callable[[Setting], Any] | None = None
    ) -> AegisConfig:
        """Build from ``cli(setting)`` (the CLI flag's raw value or ``None``), then ``ini(setting)``,
        then the environment, then the defaults; remember where each value came from."""
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for setting in SETTINGS:
            for origin, raw in setting.sources(cli, ini):
                values[setting.field] = setting.parse(str(raw), origin)
                origins[setting.field] = origin
                break
        return cls(**values, origins=origins)

    def origin(self, name: str) -> str:
        """Where the setting ``name`` (an :class:`AegisConfig` field) came from: its flag, ini key
        or env variable; all three when unknown (a config built in code)."""
        found = setting(name)
        if name in self.origins:
            return self.origins[name]
        return f"{found.flag} (default)" if getattr(self, name) == found.default else found.where


_FIELDS = {item.name: item for item in dataclasses.fields(AegisConfig) if item.name != "origins"}
_TYPES = typing.get_type_hints(AegisConfig)


@dataclass(frozen=True)
class Setting:
    """One setting: the :class:`AegisConfig` field it sets, its help, and (rarely) an env
    variable that does not follow the field's name."""

    field: str
    help: str
    env_name: str | None = None

    @property
    def flag(self) -> str:
        return "--aegis-" + self.field.replace("_", "-")

    @property
    def ini(self) -> str:
        return "aegis_" + self.field

    @property
    def env(self) -> str:
        return self.env_name or "AEGIS_" + self.field.upper()

    @property
    def dest(self) -> str:
        return self.ini

    @property
    def default(self) -> Any:
        return _FIELDS[self.field].default

    @property
    def kind(self) -> Kind:
        annotation = _TYPES[self.field]
        if typing.get_origin(annotation) is Literal:
            return "choice"
        if typing.get_origin(annotation) is tuple:
            return "choices"
        if annotation is bool:
            return "bool"
        if annotation is float:
            return "seconds"
        if annotation is int:
            return "count"
        return "path" if Path in typing.get_args(annotation) else "text"

    @property
    def choices(self) -> tuple[str, ...]:
        annotation = _TYPES[self.field]
        if self.kind == "choices":
            annotation = typing.get_args(annotation)[0]
        return tuple(typing.get_args(annotation)) if self.kind in ("choice", "choices") else ()

    @property
    def described(self) -> str:
        """The help, with the valid values when it does not name them all."""
        if self.choices and not all(re.search(rf"\b{re.escape(c)}\b", self.help) for c in self.choices):
            return f"{self.help}; valid: {', '.join(self.choices)}"
        return self.help

    @property
    def where(self) -> str:
        return f"{self.flag} / ini {self.ini} / env {self.env}"

    def sources(
        self, cli: Callable[[Setting], Any], ini: Callable[[Setting], Any] | None
    ) -> Iterator[tuple[str, Any]]:
        """The values given for this setting, with where each came from, first the one that wins."""
        for origin, raw in (
            (self.flag, cli(self)),
            (f"ini {self.ini}", ini(self) if ini is not None else None),
            (f"env {self.env}", os.environ.get(self.env)),
        ):
            if raw is not None and raw != "" and raw != []:
                yield origin, raw

    def parse(self, raw: str, origin: str | None = None) -> Any:
        """The value of ``raw`` (a CLI, ini or env string, from ``origin``); :class:`ConfigError`
        naming the setting and where it was set when it is bad."""
        try:
            return self._parse(raw)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (set by {origin})" if origin else str(exc)) from None

    def _parse(self, raw: str) -> Any:
        text = raw.strip()
        kind = self.kind
        if kind == "choice":
            if text.lower() in self.choices:
                return text.lower()
            raise ConfigError(f"{self.where}: invalid value {raw!r}; valid values: {', '.join(self.choices)}")
        if kind == "choices":
            given = [item for item in re.split(r"[\s,]+", text.lower()) if item]
            unknown = [item for item in given if item not in self.choices]
            if unknown:
                raise ConfigError(
                    f"{self.where}: invalid value {raw!r}: unknown {', '.join(map(repr, unknown))}; "
                    f"valid values (comma-separated): {', '.join(self.choices)}"
                )
            return tuple(dict.fromkeys(given))
        if kind == "bool":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ConfigError(f"{self.where}: invalid value {raw!r}; use one of: {', '.join(_TRUE + _FALSE)}")
        if kind == "seconds":
            try:
                number = float(text)
            except ValueError:
                number = -1.0
            if number <= 0:
                raise ConfigError(
                    f"{self.where}: invalid value {raw!r}; expected a positive number of seconds"
                )
            return number
        if kind == "count":
            if not text.isdigit() or int(text) > MAX_COUNT:
                raise ConfigError(
                    f"{self.where}: invalid value {raw!r}; expected a whole number from 0 to {MAX_COUNT}"
                )
            return int(text)
        return Path(text) if kind == "path" else raw


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "backend",
        "where servers run: auto (local if binaries are found, else docker) | local | docker | external",
    ),
    Setting("nats_bin", "path to the nats-server binary (local backend)", env_name="AEGIS_NATS_SERVER_BIN"),
    Setting("keep", "leave servers running after the session and print how to connect and stop them"),
    Setting("start_timeout", "seconds a server may take to become ready before the test errors"),
    Setting(
        "app_command",
        "command line of the service under test for aegis_app, run in the rootdir; {python} is the "
        "interpreter running pytest (so is a bare python), {rootdir} the rootdir "
        "(default: the reference service)",
    ),
    Setting(
        "app_health_subject",
        "subject the service under test answers health checks on; $SRV.PING or $SRV.PING.<name>: "
        "the NATS services protocol (a valid ping reply is healthy)",
    ),
    Setting("app_start_timeout", "seconds the service under test may take to answer its health check"),
    Setting(
        "app_env",
        "rename the harness's env vars for your app: 'APP_NATS_URL=AEGIS_NATS_URL APP_CA=AEGIS_NATS_TLS_CA'",
    ),
    Setting(
        "apps",
        "other programs a test starts by name (aegis_app_factory(app=NAME)), one line each: "
        "'NAME command=... [health=nats:SUBJECT|srv|http:/PATH|tcp|ready] [ready=REGEX] "
        "[env=...] [env_map=...] [start_timeout=S] [cwd=DIR]'",
    ),
    Setting(
        "servers",
        "third-party servers a test starts by name (aegis_server_factory(NAME)), one line each: "
        "'NAME [preset=redis] [binary=...] [args=...] [image=...] [image_args=...] "
        "[health=tcp|http:/PATH|ready] [ready=REGEX] [url=...] [env=...] [start_timeout=S]'; "
        "redis is known without a line",
    ),
    Setting(
        "pg_bin_dir",
        "directory holding the PostgreSQL server binaries (postgres, initdb); default: PATH, "
        "pg_config --bindir, then the newest /usr/lib/postgresql/*/bin",
    ),
    Setting(
        "pg_migrations",
        "migrations for the template database of postgres_db: a directory of NNN_name.sql (or "
        "NNN_name.up.sql) files applied in order (relative to the rootdir), 'module:function' "
        "called with the template's DSN, or 'alembic:path/to/alembic.ini' (upgrade head)",
    ),
    Setting(
        "pg_spare_databases",
        "copies of the template database kept ready per server, so that postgres_db takes one "
        "instead of waiting for CREATE DATABASE (0: clone for each test)",
    ),
    Setting(
        "pg_data_dir",
        "where the local backend puts PostgreSQL's data directories (default: /dev/shm when it is a "
        "tmpfs with 1 GiB free, else the temp dir)",
    ),
    Setting("docker_nats_image", "NATS image of the docker backend"),
    Setting("docker_pg_image", "PostgreSQL image of the docker backend"),
    Setting(
        "docker_app_image",
        "image of the service under test on the docker backend "
        "(default: built from the rootdir's Dockerfile)",
    ),
    Setting(
        "docker_network",
        "docker backend networking: bridge (publish ports) | host (no published ports; each server "
        "gets a free host port on its command line)",
    ),
    Setting(
        "external_nats_url",
        "external backend: URL of the existing NATS server (nats:// or tls://); a cluster: its nodes' "
        "URLs, comma-separated",
    ),
    Setting("external_nats_user", "external backend: NATS user name (with --aegis-external-nats-password)"),
    Setting("external_nats_password", "external backend: NATS password"),
    Setting("external_nats_token", "external backend: NATS token"),
    Setting("external_nats_creds", "external backend: path to a NATS .creds file (JWT + seed)"),
    Setting(
        "external_nats_ca", "external backend: CA bundle (PEM) that signed the NATS server's certificate"
    ),
    Setting(
        "external_pg_dsn",
        "external backend: DSN of an existing PostgreSQL (a role allowed to CREATE DATABASE)",
    ),
    Setting(
        "security_report",
        "write the session's security matrix (specs, tests connected, negative cases proved) as JSON here",
    ),
    Setting(
        "require",
        "fail the session unless passing tests proved each of these security cases (comma-separated)",
    ),
)

_missing = set(_FIELDS) - {setting.field for setting in SETTINGS}
assert not _missing, f"AegisConfig fields without a Setting: {_missing}"


def setting(field: str) -> Setting:
    """The :class:`Setting` of an :class:`AegisConfig` field."""
    return next(s for s in SETTINGS if s.field == field)
