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
from typing import Any, Literal

BackendName = Literal["auto", "local", "docker", "external"]
BACKENDS: tuple[BackendName, ...] = ("auto", "local", "docker", "external")
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
        "directory of NNN_name.sql files applied in order to the template database of postgres_db "
        "(relative paths are relative to the rootdir)",
    ),
)


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
    pg_migrations: Path | None = None

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
            pg_migrations=Path(raw["aegis_pg_migrations"]) if raw["aegis_pg_migrations"] else None,
        )


def _setting(ini: str) -> Setting:
    return next(s for s in SETTINGS if s.ini == ini)


def _where(ini: str) -> str:
    s = _setting(ini)
    return f"{s.flag} / ini {s.ini} / env {s.env}"


def _choice(value: str | None, ini: str, valid: tuple[BackendName, ...]) -> BackendName:
    value = (value or "").strip().lower()
    if value not in valid:
        raise ConfigError(f"{_where(ini)}: invalid value {value!r}; valid values: {', '.join(valid)}")
    return value


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
