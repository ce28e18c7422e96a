"""Configuration from ``AEGIS_*`` environment variables, parsed and validated by a pydantic model.

Every problem is reported as one line naming the variable (see :class:`SettingsError`); callers turn it
into exit code 2. Empty values count as unset.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import nkeys
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from aegis_service import __version__
from aegis_service.tls import TlsConfigError, build_ssl_context

ENV_PREFIX = "AEGIS_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_REGISTRATION_TTL = 1.0  # nats-server's per-message TTL (Nats-TTL) has a granularity of one second

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT_TOKEN_RE = re.compile(r"^[^\s.*>]+$")
_URL_SCHEMES = ("nats", "tls")

AuthMode = Literal["none", "user_password", "token", "nkey_seed", "creds"]


class SettingsError(Exception):
    """A configuration problem; ``str(err)`` is one line naming the variable(s) and what is wrong."""


class _VarError(ValueError):
    """A cross-field problem attributed to one variable."""

    def __init__(self, var: str, message: str) -> None:
        super().__init__(message)
        self.var = var


def _show(value: object) -> str:
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def _parse_float(value: object, what: str = "a number of seconds") -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got {_show(value)}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"expected {what}, got {_show(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_show(value)}")
    return number


def _parse_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {_show(value)}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {_show(value)}") from None


def _readable_file(value: object) -> Path:
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def parse_http_bind(value: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:8080``) into host and port; port 0 means "any free port"."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"expected host:port (IPv6 as [addr]:port), got {_show(value)}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected host:port (IPv6 as [addr]:port), got {_show(value)}")
    if not host:
        raise ValueError(f"missing host in {_show(value)}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be an integer 0-65535, got {_show(port_text)}")
    return host, int(port_text)


class Settings(BaseModel):
    """Validated service configuration. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_alias=True, validate_by_name=True)

    nats_url: str = Field("nats://127.0.0.1:4222", alias="AEGIS_NATS_URL")
    nats_user: str | None = Field(None, alias="AEGIS_NATS_USER")
    nats_password: SecretStr | None = Field(None, alias="AEGIS_NATS_PASSWORD")
    nats_token: SecretStr | None = Field(None, alias="AEGIS_NATS_TOKEN")
    nats_nkey_seed_file: Path | None = Field(None, alias="AEGIS_NATS_NKEY_SEED_FILE")
    nats_creds_file: Path | None = Field(None, alias="AEGIS_NATS_CREDS_FILE")
    tls_ca: Path | None = Field(None, alias="AEGIS_NATS_TLS_CA")
    tls_cert: Path | None = Field(None, alias="AEGIS_NATS_TLS_CERT")
    tls_key: Path | None = Field(None, alias="AEGIS_NATS_TLS_KEY")
    tls_hostname: str | None = Field(None, alias="AEGIS_NATS_TLS_HOSTNAME")
    service_name: str = Field("aegis-service", alias="AEGIS_SERVICE_NAME")
    service_version: str = Field(__version__, alias="AEGIS_SERVICE_VERSION")
    instance_id: str = Field(default_factory=lambda: uuid.uuid4().hex, alias="AEGIS_INSTANCE_ID")
    health_subject: str = Field("health.check", alias="AEGIS_HEALTH_SUBJECT")
    registration_ttl: float = Field(30.0, alias="AEGIS_REGISTRATION_TTL")
    heartbeat_interval: float = Field(10.0, alias="AEGIS_HEARTBEAT_INTERVAL")
    http_bind: str = Field("127.0.0.1:8080", alias="AEGIS_HTTP_BIND")
    connect_timeout: float = Field(30.0, alias="AEGIS_CONNECT_TIMEOUT")
    request_timeout: float = Field(2.0, alias="AEGIS_NATS_REQUEST_TIMEOUT")
    breaker_failure_threshold: int = Field(5, alias="AEGIS_BREAKER_FAILURE_THRESHOLD")
    breaker_reset_timeout: float = Field(5.0, alias="AEGIS_BREAKER_RESET_TIMEOUT")
    log_level: str = Field("INFO", alias="AEGIS_LOG_LEVEL")
    # The audit pipeline (outbox relay, consumer, audit API) runs only with a database.
    database_url: SecretStr | None = Field(None, alias="AEGIS_DATABASE_URL")
    audit_max_event_bytes: int = Field(65536, alias="AEGIS_AUDIT_MAX_EVENT_BYTES")
    audit_batch_size: int = Field(1000, alias="AEGIS_AUDIT_BATCH_SIZE")
    audit_ack_wait: float = Field(30.0, alias="AEGIS_AUDIT_ACK_WAIT")
    audit_duplicate_window: float = Field(120.0, alias="AEGIS_AUDIT_DUPLICATE_WINDOW")
    outbox_poll_interval: float = Field(1.0, alias="AEGIS_OUTBOX_POLL_INTERVAL")

    # -- single-field validators -------------------------------------------------------------------

    @field_validator("nats_url", mode="before")
    @classmethod
    def _check_url(cls, value: object) -> str:
        urls = [part.strip() for part in str(value).split(",")]
        for url in urls:
            if not url:
                raise ValueError(f"empty server URL in {_show(value)}")
            parts = urlsplit(url)
            if parts.scheme not in _URL_SCHEMES:
                raise ValueError(f"scheme must be nats:// or tls://, got {_show(url)}")
            try:
                host, port = parts.hostname, parts.port
            except ValueError:
                raise ValueError(f"invalid port in {_show(url)}") from None
            if not host:
                raise ValueError(f"missing host in {_show(url)}")
            if port == 0:
                raise ValueError(f"port must be 1-65535 in {_show(url)}")
            if parts.username or parts.password:
                raise ValueError(
                    "credentials in the URL are not accepted; use AEGIS_NATS_USER/AEGIS_NATS_PASSWORD "
                    "or AEGIS_NATS_TOKEN"
                )
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"unexpected path or query in {_show(url)}")
        return ",".join(urls)

    @field_validator("nats_user", "tls_hostname", mode="before")
    @classmethod
    def _check_plain_text(cls, value: object) -> str:
        text = str(value)
        if text != text.strip() or any(ch.isspace() for ch in text):
            raise ValueError("must not contain whitespace")
        return text

    @field_validator("nats_nkey_seed_file", mode="before")
    @classmethod
    def _check_seed_file(cls, value: object) -> Path:
        path = _readable_file(value)
        seed = bytearray(path.read_bytes().strip())
        if not seed.startswith(b"SU"):
            raise ValueError(f"{path} does not hold an nkey user seed (expected a line starting with 'SU')")
        try:
            nkeys.from_seed(seed).wipe()
        except Exception:
            raise ValueError(f"{path} does not hold a valid nkey user seed") from None
        return path

    @field_validator("nats_creds_file", mode="before")
    @classmethod
    def _check_creds_file(cls, value: object) -> Path:
        path = _readable_file(value)
        text = path.read_text(encoding="utf-8", errors="replace")
        if "BEGIN NATS USER JWT" not in text or "BEGIN USER NKEY SEED" not in text:
            raise ValueError(f"{path} is not a NATS .creds file (needs a user JWT and an nkey seed block)")
        return path

    @field_validator("tls_ca", "tls_cert", "tls_key", mode="before")
    @classmethod
    def _check_tls_file(cls, value: object) -> Path:
        return _readable_file(value)

    @field_validator("service_name", "instance_id", mode="before")
    @classmethod
    def _check_token(cls, value: object) -> str:
        text = str(value)
        if not _TOKEN_RE.match(text):
            raise ValueError(f"must be 1-64 characters from [A-Za-z0-9_-], got {_show(text)}")
        return text

    @field_validator("service_version", mode="before")
    @classmethod
    def _check_version(cls, value: object) -> str:
        text = str(value)
        if len(text) > 64 or any(ch.isspace() for ch in text):
            raise ValueError(f"must be at most 64 characters without whitespace, got {_show(text)}")
        return text

    @field_validator("health_subject", mode="before")
    @classmethod
    def _check_subject(cls, value: object) -> str:
        text = str(value)
        if len(text) > 200 or not all(_SUBJECT_TOKEN_RE.match(token) for token in text.split(".")):
            raise ValueError(
                "must be a NATS subject of dot-separated tokens without spaces or wildcards, "
                f"got {_show(text)}"
            )
        return text

    @field_validator("registration_ttl", mode="before")
    @classmethod
    def _check_ttl(cls, value: object) -> float:
        number = _parse_float(value)
        if number < MIN_REGISTRATION_TTL:
            raise ValueError(f"must be at least {MIN_REGISTRATION_TTL:g} second(s), got {_show(value)}")
        return number

    @field_validator(
        "heartbeat_interval",
        "connect_timeout",
        "request_timeout",
        "breaker_reset_timeout",
        "audit_ack_wait",
        "audit_duplicate_window",
        "outbox_poll_interval",
        mode="before",
    )
    @classmethod
    def _check_positive_seconds(cls, value: object) -> float:
        number = _parse_float(value)
        if number <= 0:
            raise ValueError(f"must be greater than 0, got {_show(value)}")
        return number

    @field_validator("database_url", mode="before")
    @classmethod
    def _check_database_url(cls, value: object) -> str:
        text = str(value).strip()
        if urlsplit(text).scheme not in ("postgresql", "postgres"):
            raise ValueError("expected a postgresql:// URL")
        return text

    @field_validator("audit_max_event_bytes", "audit_batch_size", mode="before")
    @classmethod
    def _check_positive_int(cls, value: object) -> int:
        number = _parse_int(value)
        if number < 1:
            raise ValueError(f"must be at least 1, got {_show(value)}")
        return number

    @field_validator("breaker_failure_threshold", mode="before")
    @classmethod
    def _check_threshold(cls, value: object) -> int:
        number = _parse_int(value)
        if number < 1:
            raise ValueError(f"must be at least 1, got {_show(value)}")
        return number

    @field_validator("http_bind", mode="before")
    @classmethod
    def _check_bind(cls, value: object) -> str:
        parse_http_bind(str(value))
        return str(value).strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_log_level(cls, value: object) -> str:
        text = str(value).strip().upper()
        if text == "WARN":
            text = "WARNING"
        if text not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {_show(value)}")
        return text

    # -- cross-field rules -------------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.nats_user is not None and self.nats_password is None:
            raise _VarError("AEGIS_NATS_PASSWORD", "required when AEGIS_NATS_USER is set")
        if self.nats_password is not None and self.nats_user is None:
            raise _VarError("AEGIS_NATS_USER", "required when AEGIS_NATS_PASSWORD is set")
        modes = {
            "AEGIS_NATS_USER+AEGIS_NATS_PASSWORD": self.nats_user is not None,
            "AEGIS_NATS_TOKEN": self.nats_token is not None,
            "AEGIS_NATS_NKEY_SEED_FILE": self.nats_nkey_seed_file is not None,
            "AEGIS_NATS_CREDS_FILE": self.nats_creds_file is not None,
        }
        chosen = [name for name, present in modes.items() if present]
        if len(chosen) > 1:
            raise _VarError(chosen[1], f"conflicts with {chosen[0]}; configure at most one NATS auth mode")
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "AEGIS_NATS_TLS_KEY" if self.tls_key is None else "AEGIS_NATS_TLS_CERT"
            other = "AEGIS_NATS_TLS_CERT" if self.tls_key is None else "AEGIS_NATS_TLS_KEY"
            raise _VarError(missing, f"required when {other} is set (client certificate and key go together)")
        if self.heartbeat_interval >= self.registration_ttl:
            raise _VarError(
                "AEGIS_HEARTBEAT_INTERVAL",
                f"must be less than AEGIS_REGISTRATION_TTL ({self.heartbeat_interval:g} >= "
                f"{self.registration_ttl:g})",
            )
        return self

    # -- derived values ----------------------------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        return self.nats_url.split(",")

    @property
    def tls_enabled(self) -> bool:
        """TLS is wanted (tls:// URL, CA bundle or client certificate): the connection must be TLS."""
        return (
            any(url.startswith("tls://") for url in self.servers)
            or self.tls_ca is not None
            or self.tls_cert is not None
        )

    @property
    def auth_mode(self) -> AuthMode:
        if self.nats_user is not None:
            return "user_password"
        if self.nats_token is not None:
            return "token"
        if self.nats_nkey_seed_file is not None:
            return "nkey_seed"
        if self.nats_creds_file is not None:
            return "creds"
        return "none"

    @property
    def http_host(self) -> str:
        return parse_http_bind(self.http_bind)[0]

    @property
    def http_port(self) -> int:
        return parse_http_bind(self.http_bind)[1]

    @property
    def instance_key(self) -> str:
        """Key of this instance in the ``service-instances`` KV bucket."""
        return f"{self.service_name}.{self.instance_id}"


def _format_errors(exc: ValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _VarError):
            var = cause.var
            message = str(cause)
        else:
            loc = error.get("loc") or ()
            var = str(loc[0]) if loc else "configuration"
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(f"{var}: {message}")
    return "; ".join(problems)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from the environment (``os.environ`` by default).

    Raises :class:`SettingsError` with a one-line message on any invalid value, including TLS material
    that cannot be loaded.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {
        key: value for key, value in env.items() if key.startswith(ENV_PREFIX) and value.strip() != ""
    }
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_format_errors(exc)) from None

    try:
        build_ssl_context(settings)
    except TlsConfigError as exc:
        raise SettingsError(str(exc)) from None
    return settings
