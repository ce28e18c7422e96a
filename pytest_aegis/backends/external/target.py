"""The external backend's settings: where the NATS server is and how to log in, validated up
front (:func:`nats_target`), and the rules for what the harness may not do to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import SplitResult, unquote, urlsplit

from pytest_aegis.config import AegisConfig, setting
from pytest_aegis.errors import BackendMisconfigured, ExternalServerError
from pytest_aegis.natsd.auth import Identity

URL_FLAG = f"{setting('external_nats_url').flag} / {setting('external_nats_url').env}"
CA_FLAG = f"{setting('external_nats_ca').flag} / {setting('external_nats_ca').env}"
DSN_FLAG = f"{setting('external_pg_dsn').flag} / {setting('external_pg_dsn').env}"
NOT_OURS = (
    "Tests that stop, kill, restart or pause a server need a server the harness runs: mark them "
    "@pytest.mark.aegis_backends('local', 'docker')."
)


def redact_url(url: str) -> str:
    """``url`` with any password (or token in the user part) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and not parts.username:
        return url
    user = parts.username or ""
    userinfo = f"{user}:***" if parts.password is not None else "***"
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{userinfo}@{host}").geturl()


def refuse(action: str, what: str) -> NoReturn:
    """Raise :class:`ExternalServerError`: ``action`` needs a server the harness runs."""
    raise ExternalServerError(
        f"{action}() is not available on the external backend: {what} was started outside the "
        f"harness and is not ours to {action}. {NOT_OURS}"
    )


@dataclass(frozen=True)
class NatsTarget:
    """The external NATS server as the config describes it (validated)."""

    url: str  # without credentials
    host: str
    port: int
    tls: bool
    identity: Identity
    auth: str
    ca_file: Path | None


def nats_target(config: AegisConfig) -> NatsTarget:
    """Validate the ``external_nats_*`` settings; raise :class:`BackendMisconfigured` naming the
    setting that is wrong and how to fix it."""
    parts, port = _parse_url(config.external_nats_url, config.origin("external_nats_url"))
    identity, auth = _identity(config, parts)
    ca = config.external_nats_ca
    if ca is not None and not ca.is_file():
        raise BackendMisconfigured(
            f"{config.origin('external_nats_ca')}: the CA bundle {ca} does not exist (or is not a file)"
        )
    host = parts.hostname or ""
    shown_host = f"[{host}]" if ":" in host else host
    return NatsTarget(
        url=f"{parts.scheme}://{shown_host}:{port}",
        host=host,
        port=port,
        tls=parts.scheme == "tls",
        identity=identity,
        auth=auth,
        ca_file=ca,
    )


def _parse_url(raw: str | None, origin: str) -> tuple[SplitResult, int]:
    if not raw:
        raise BackendMisconfigured(
            f"--aegis-backend=external needs the NATS server's URL: set {URL_FLAG} "
            "(e.g. tls://127.0.0.1:4222 for a `kubectl port-forward svc/nats 4222`)"
        )
    parts = urlsplit(raw if "://" in raw else f"nats://{raw}")
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise BackendMisconfigured(
            f"{origin}: {redact_url(raw)!r} is not a NATS URL; expected nats://host:port or tls://host:port"
        )
    try:
        return parts, parts.port or 4222
    except ValueError:
        raise BackendMisconfigured(f"{origin}: {redact_url(raw)!r} has an invalid port") from None


def _identity(config: AegisConfig, parts: SplitResult) -> tuple[Identity, str]:
    """The credentials to log in with (the settings', else the URL's) and their auth mode."""
    user, password, token, creds = (
        config.external_nats_user,
        config.external_nats_password,
        config.external_nats_token,
        config.external_nats_creds,
    )
    if parts.username and not (user or token or creds):  # credentials in the URL count too
        if parts.password is not None:
            user, password = unquote(parts.username), unquote(parts.password)
        else:
            token = unquote(parts.username)
    given = [name for name, value in (("user/password", user or password), ("token", token), ("creds", creds))
             if value]  # fmt: skip
    if len(given) > 1:
        raise BackendMisconfigured(
            f"--aegis-backend=external: give one kind of NATS credentials, not {' and '.join(given)} "
            "(--aegis-external-nats-user/-password, --aegis-external-nats-token or "
            "--aegis-external-nats-creds)"
        )
    if bool(user) != bool(password):
        missing = "--aegis-external-nats-password" if user else "--aegis-external-nats-user"
        raise BackendMisconfigured(
            f"--aegis-backend=external: a NATS user needs a password and vice versa; set {missing}"
        )
    if creds is not None and not creds.is_file():
        raise BackendMisconfigured(
            f"{config.origin('external_nats_creds')}: the NATS creds file {creds} does not exist "
            "(or is not a file)"
        )
    if user:
        return Identity(user, {"user": user, "password": password}), "userpass"
    if token:
        return Identity("token", {"token": token}), "token"
    if creds is not None:
        return Identity(creds.stem, {"user_credentials": str(creds)}), "jwt"
    return Identity("anonymous", {}), "none"
