"""Configuration from ``AEGIS_*`` environment variables, parsed and validated by a pydantic model.

Every problem is reported as one line naming the variable (see :class:`SettingsError`); callers turn it
into exit code 2. Empty values count as unset. The checks of single values are in
:mod:`aegis_service.env_values`; the rules across variables and the derived values are here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from aegis_service import __version__
from aegis_service.env_values import (
    CredsFile,
    DatabaseUrl,
    HttpBind,
    LogLevel,
    NatsUrls,
    NkeySeedFile,
    PlainText,
    PositiveInt,
    ReadableFile,
    RegistrationTtl,
    Replicas,
    Seconds,
    Subject,
    Token,
    Version,
    parse_http_bind,
)

ENV_PREFIX = "AEGIS_"

AuthMode = Literal["none", "user_password", "token", "nkey_seed", "creds"]


class SettingsError(Exception):
    """A configuration problem; ``str(err)`` is one line naming the variable(s) and what is wrong."""


class _VarError(ValueError):
    """A cross-field problem attributed to one variable."""

    def __init__(self, var: str, message: str) -> None:
        super().__init__(message)
        self.var = var


class Settings(BaseModel):
    """Validated service configuration. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_alias=True, validate_by_name=True)

    nats_url: NatsUrls = Field("nats://127.0.0.1:4222", alias="AEGIS_NATS_URL")
    nats_user: PlainText | None = Field(None, alias="AEGIS_NATS_USER")
    nats_password: SecretStr | None = Field(None, alias="AEGIS_NATS_PASSWORD")
    nats_token: SecretStr | None = Field(None, alias="AEGIS_NATS_TOKEN")
    nats_nkey_seed_file: NkeySeedFile | None = Field(None, alias="AEGIS_NATS_NKEY_SEED_FILE")
    nats_creds_file: CredsFile | None = Field(None, alias="AEGIS_NATS_CREDS_FILE")
    tls_ca: ReadableFile | None = Field(None, alias="AEGIS_NATS_TLS_CA")
    tls_cert: ReadableFile | None = Field(None, alias="AEGIS_NATS_TLS_CERT")
    tls_key: ReadableFile | None = Field(None, alias="AEGIS_NATS_TLS_KEY")
    tls_hostname: PlainText | None = Field(None, alias="AEGIS_NATS_TLS_HOSTNAME")
    service_name: Token = Field("aegis-service", alias="AEGIS_SERVICE_NAME")
    service_version: Version = Field(__version__, alias="AEGIS_SERVICE_VERSION")
    instance_id: Token = Field(default_factory=lambda: uuid.uuid4().hex, alias="AEGIS_INSTANCE_ID")
    health_subject: Subject = Field("health.check", alias="AEGIS_HEALTH_SUBJECT")
    registration_ttl: RegistrationTtl = Field(30.0, alias="AEGIS_REGISTRATION_TTL")
    heartbeat_interval: Seconds = Field(10.0, alias="AEGIS_HEARTBEAT_INTERVAL")
    http_bind: HttpBind = Field("127.0.0.1:8080", alias="AEGIS_HTTP_BIND")
    connect_timeout: Seconds = Field(30.0, alias="AEGIS_CONNECT_TIMEOUT")
    request_timeout: Seconds = Field(2.0, alias="AEGIS_NATS_REQUEST_TIMEOUT")
    ping_interval: Seconds = Field(10.0, alias="AEGIS_NATS_PING_INTERVAL")
    jetstream_replicas: Replicas = Field(1, alias="AEGIS_JETSTREAM_REPLICAS")
    max_outstanding_pings: PositiveInt = Field(2, alias="AEGIS_NATS_MAX_OUTSTANDING_PINGS")
    breaker_failure_threshold: PositiveInt = Field(5, alias="AEGIS_BREAKER_FAILURE_THRESHOLD")
    breaker_reset_timeout: Seconds = Field(5.0, alias="AEGIS_BREAKER_RESET_TIMEOUT")
    log_level: LogLevel = Field("INFO", alias="AEGIS_LOG_LEVEL")
    # The audit pipeline (outbox relay, consumer, audit API) runs only with a database.
    database_url: DatabaseUrl | None = Field(None, alias="AEGIS_DATABASE_URL")
    audit_max_event_bytes: PositiveInt = Field(65536, alias="AEGIS_AUDIT_MAX_EVENT_BYTES")
    audit_batch_size: PositiveInt = Field(1000, alias="AEGIS_AUDIT_BATCH_SIZE")
    audit_ack_wait: Seconds = Field(30.0, alias="AEGIS_AUDIT_ACK_WAIT")
    audit_duplicate_window: Seconds = Field(120.0, alias="AEGIS_AUDIT_DUPLICATE_WINDOW")
    outbox_poll_interval: Seconds = Field(1.0, alias="AEGIS_OUTBOX_POLL_INTERVAL")

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

    # The material must load the way the NATS connection will load it; imported here so that the use
    # cases, which read Settings, do not import an adapter.
    from aegis_service.adapters.nats.tls import TlsConfigError, build_ssl_context

    try:
        build_ssl_context(settings)
    except TlsConfigError as exc:
        raise SettingsError(str(exc)) from None
    return settings
