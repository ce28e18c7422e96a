"""The plugin's settings: one frozen :class:`AegisConfig`, read once per session.

Each setting comes from its CLI flag, else its ini key, else its environment
variable, else the default (pytest-asyncio's convention: CLI default ``None``
falls back to ini).  Bad values raise :class:`ConfigError` naming the setting,
the value and the valid values; the plugin turns it into ``pytest.UsageError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

BackendName = Literal["auto", "local", "docker", "external"]
BACKENDS: tuple[BackendName, ...] = ("auto", "local", "docker", "external")
_C = TypeVar("_C", bound=str)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """A setting with a bad value; the message says which and what is valid."""


@dataclass(frozen=True)
class Setting:
    """One setting: its CLI flag, ini key, environment variable and help text."""

    flag: str
    ini: str
    env: str
    help: str
    default: str | None = None
    kind: Literal["string", "bool"] = "string"

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "--aegis-backend",
        "aegis_backend",
        "AEGIS_BACKEND",
        "where servers run: auto (local if binaries are found) | local | docker | external",
        "auto",
    ),
    Setting(
        "--aegis-nats-bin",
        "aegis_nats_bin",
        "AEGIS_NATS_SERVER_BIN",
        "path to the nats-server binary (local backend)",
    ),
    Setting(
        "--aegis-keep",
        "aegis_keep",
        "AEGIS_KEEP",
        "leave servers running after the session and print how to connect and stop them",
        "false",
        "bool",
    ),
    Setting(
        "--aegis-start-timeout",
        "aegis_start_timeout",
        "AEGIS_START_TIMEOUT",
        "seconds a server may take to become ready before the test errors",
        "20",
    ),
    Setting(
        "--aegis-app-command",
        "aegis_app_command",
        "AEGIS_APP_COMMAND",
        "command line of the service under test for aegis_app (default: the reference service)",
    ),
    Setting(
        "--aegis-app-health-subject",
        "aegis_app_health_subject",
        "AEGIS_APP_HEALTH_SUBJECT",
        "subject the service under test answers health checks on",
        "health.check",
    ),
    Setting(
        "--aegis-app-env",
        "aegis_app_env",
        "AEGIS_APP_ENV",
        "rename the harness's env vars for your app: 'APP_NATS_URL=AEGIS_NATS_URL APP_CA=AEGIS_NATS_TLS_CA'",
    ),
    Setting(
        "--aegis-pg-bin-dir",
        "aegis_pg_bin_dir",
        "AEGIS_PG_BIN_DIR",
        "directory holding the PostgreSQL server binaries (postgres, initdb); default: PATH, "
        "pg_config --bindir, then the newest /usr/lib/postgresql/*/bin",
    ),
    Setting(
        "--aegis-pg-migrations",
        "aegis_pg_migrations",
        "AEGIS_PG_MIGRATIONS",
        "migrations for the template database of postgres_db: a directory of NNN_name.sql (or "
        "NNN_name.up.sql) files applied in order (relative to the rootdir), or 'module:function' "
        "called with the template's DSN",
    ),
    Setting(
        "--aegis-pg-data-dir",
        "aegis_pg_data_dir",
        "AEGIS_PG_DATA_DIR",
        "where the local backend puts PostgreSQL's data directories (default: /dev/shm when it is a "
        "tmpfs with 1 GiB free, else the temp dir)",
    ),
    Setting(
        "--aegis-docker-nats-image",
        "aegis_docker_nats_image",
        "AEGIS_DOCKER_NATS_IMAGE",
        "NATS image of the docker backend",
        "nats:2.11",
    ),
    Setting(
        "--aegis-docker-pg-image",
        "aegis_docker_pg_image",
        "AEGIS_DOCKER_PG_IMAGE",
        "PostgreSQL image of the docker backend",
        "postgres:16",
    ),
    Setting(
        "--aegis-docker-app-image",
        "aegis_docker_app_image",
        "AEGIS_DOCKER_APP_IMAGE",
        "image of the service under test on the docker backend "
        "(default: built from the rootdir's Dockerfile)",
    ),
    Setting(
        "--aegis-docker-network",
        "aegis_docker_network",
        "AEGIS_DOCKER_NETWORK",
        "docker backend networking: bridge (publish ports) | host (no published ports; each server "
        "gets a free host port on its command line)",
        "bridge",
    ),
    Setting(
        "--aegis-external-nats-url",
        "aegis_external_nats_url",
        "AEGIS_EXTERNAL_NATS_URL",
        "external backend: URL of the existing NATS server (nats:// or tls://)",
    ),
    Setting(
        "--aegis-external-nats-user",
        "aegis_external_nats_user",
        "AEGIS_EXTERNAL_NATS_USER",
        "external backend: NATS user name (with --aegis-external-nats-password)",
    ),
    Setting(
        "--aegis-external-nats-password",
        "aegis_external_nats_password",
        "AEGIS_EXTERNAL_NATS_PASSWORD",
        "external backend: NATS password",
    ),
    Setting(
        "--aegis-external-nats-token",
        "aegis_external_nats_token",
        "AEGIS_EXTERNAL_NATS_TOKEN",
        "external backend: NATS token",
    ),
    Setting(
        "--aegis-external-nats-creds",
        "aegis_external_nats_creds",
        "AEGIS_EXTERNAL_NATS_CREDS",
        "external backend: path to a NATS .creds file (JWT + seed)",
    ),
    Setting(
        "--aegis-external-nats-ca",
        "aegis_external_nats_ca",
        "AEGIS_EXTERNAL_NATS_CA",
        "external backend: CA bundle (PEM) that signed the NATS server's certificate",
    ),
    Setting(
        "--aegis-external-pg-dsn",
        "aegis_external_pg_dsn",
        "AEGIS_EXTERNAL_PG_DSN",
        "external backend: DSN of an existing PostgreSQL (a role allowed to CREATE DATABASE)",
    ),
)

DockerNetwork = Literal["bridge", "host"]
DOCKER_NETWORKS: tuple[DockerNetwork, ...] = ("bridge", "host")


@dataclass(frozen=True)
class AegisConfig:
    """The effective settings of this session."""

    backend: BackendName = "auto"
    nats_bin: Path | None = None
    keep: bool = False
    start_timeout: float = 20.0
    app_command: str | None = None
    app_health_subject: str = "health.check"
    app_env: str | None = None
    pg_bin_dir: Path | None = None
    pg_migrations: str | None = None
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

    @classmethod
    def resolve(cls, lookup: Callable[[Setting], Any]) -> AegisConfig:
        """Build from ``lookup(setting) -> raw value or None`` (CLI, then ini),
        falling back to the environment and the defaults."""
        raw: dict[str, str | None] = {}
        for setting in SETTINGS:
            value = lookup(setting)
            if value is None or value == "" or value == []:
                value = os.environ.get(setting.env)
            if value is None or value == "":
                value = setting.default
            raw[setting.ini] = None if value is None else str(value)
        return cls(
            backend=_choice(raw["aegis_backend"], "aegis_backend", BACKENDS),
            nats_bin=Path(raw["aegis_nats_bin"]) if raw["aegis_nats_bin"] else None,
            keep=_bool(raw["aegis_keep"], "aegis_keep"),
            start_timeout=_positive_float(raw["aegis_start_timeout"], "aegis_start_timeout"),
            app_command=raw["aegis_app_command"],
            app_health_subject=raw["aegis_app_health_subject"] or "health.check",
            app_env=raw["aegis_app_env"],
            pg_bin_dir=Path(raw["aegis_pg_bin_dir"]) if raw["aegis_pg_bin_dir"] else None,
            pg_migrations=raw["aegis_pg_migrations"],
            pg_data_dir=_path(raw["aegis_pg_data_dir"]),
            docker_nats_image=raw["aegis_docker_nats_image"] or "nats:2.11",
            docker_pg_image=raw["aegis_docker_pg_image"] or "postgres:16",
            docker_app_image=raw["aegis_docker_app_image"],
            docker_network=_choice(raw["aegis_docker_network"], "aegis_docker_network", DOCKER_NETWORKS),
            external_nats_url=raw["aegis_external_nats_url"],
            external_nats_user=raw["aegis_external_nats_user"],
            external_nats_password=raw["aegis_external_nats_password"],
            external_nats_token=raw["aegis_external_nats_token"],
            external_nats_creds=_path(raw["aegis_external_nats_creds"]),
            external_nats_ca=_path(raw["aegis_external_nats_ca"]),
            external_pg_dsn=raw["aegis_external_pg_dsn"],
        )


def _setting(ini: str) -> Setting:
    return next(s for s in SETTINGS if s.ini == ini)


def _where(ini: str) -> str:
    s = _setting(ini)
    return f"{s.flag} / ini {s.ini} / env {s.env}"


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _choice(value: str | None, ini: str, valid: tuple[_C, ...]) -> _C:
    text = (value or "").strip().lower()
    for choice in valid:
        if text == choice:
            return choice
    raise ConfigError(f"{_where(ini)}: invalid value {value!r}; valid values: {', '.join(valid)}")


def _bool(value: str | None, ini: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{_where(ini)}: invalid value {value!r}; use one of: {', '.join(_TRUE + _FALSE[:-1])}")


def _positive_float(value: str | None, ini: str) -> float:
    try:
        number = float(value or "")
    except ValueError:
        number = -1.0
    if number <= 0:
        raise ConfigError(f"{_where(ini)}: invalid value {value!r}; expected a positive number of seconds")
    return number
