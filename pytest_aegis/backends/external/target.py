"""The external backend's settings: where the NATS server is (one URL, or a comma-separated list:
the nodes of a cluster) and how to log in, validated up front (:func:`nats_target`), and the rules
for what the harness may not do to it."""

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
    """The external NATS server as the config describes it (validated): one URL, or the URLs of a
    cluster's nodes (``urls``, in the order given; clients fail over between them)."""

    urls: tuple[str, ...]  # without credentials
    host: str  # the first URL's
    port: int
    tls: bool
    identity: Identity
    auth: str
    ca_file: Path | None

    @property
    def url(self) -> str:
        """The first URL (the handle's ``url``; clients get them all)."""
        return self.urls[0]

    @property
    def shown(self) -> str:
        """The URL, or every URL, comma-separated."""
        return ", ".join(self.urls)

    @property
    def where(self) -> str:
        """``the server at <url>``, or ``the cluster of <n> at <url>, <url>, ...``."""
        if len(self.urls) == 1:
            return f"the server at {self.url}"
        return f"the cluster of {len(self.urls)} at {self.shown}"


def nats_target(config: AegisConfig) -> NatsTarget:
    """Validate the ``external_nats_*`` settings; raise :class:`BackendMisconfigured` naming the
    setting that is wrong (and where it was set) and how to fix it."""
    entries = _parse_urls(config.external_nats_url, config.origin("external_nats_url"))
    identity, auth = _identity(config, _credentials_part(entries, config.origin("external_nats_url")))
    ca = config.external_nats_ca
    if ca is not None and not ca.is_file():
        raise BackendMisconfigured(
            f"{config.origin('external_nats_ca')}: the CA bundle {ca} does not exist (or is not a file)"
        )
    first, port = entries[0]
    return NatsTarget(
        urls=tuple(_bare(parts, port) for parts, port in entries),
        host=first.hostname or "",
        port=port,
        tls=first.scheme == "tls",
        identity=identity,
        auth=auth,
        ca_file=ca,
    )


def _bare(parts: SplitResult, port: int) -> str:
    """``scheme://host:port``, without credentials."""
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _parse_urls(raw: str | None, origin: str) -> list[tuple[SplitResult, int]]:
    """Each URL of the comma-separated ``raw`` with its port; :class:`BackendMisconfigured` naming
    the first bad entry and ``origin`` (where it was set)."""
    entries = [entry for entry in (item.strip() for item in (raw or "").split(",")) if entry]
    if not entries:
        raise BackendMisconfigured(
            f"--aegis-backend=external needs the NATS server's URL: set {URL_FLAG} "
            "(e.g. tls://127.0.0.1:4222 for a `kubectl port-forward svc/nats 4222`; a cluster: its "
            "nodes' URLs, comma-separated)"
        )
    parsed: list[tuple[SplitResult, int]] = []
    for number, entry in enumerate(entries, 1):
        shown = repr(redact_url(entry))
        which = (
            f"{origin}: {shown}"
            if len(entries) == 1
            else f"{origin}: entry {number} of {len(entries)}, {shown},"
        )
        parts, port = _parse_url(entry, which)
        if parsed and parts.scheme != parsed[0][0].scheme:
            raise BackendMisconfigured(
                f"{which} is a {parts.scheme}:// URL after {parsed[0][0].scheme}:// ones; the nodes of "
                "one cluster take one scheme (tls:// when they require TLS)"
            )
        if any(_bare(parts, port) == _bare(*seen) for seen in parsed):
            raise BackendMisconfigured(f"{which} is listed twice")
        parsed.append((parts, port))
    return parsed


def _parse_url(raw: str, which: str) -> tuple[SplitResult, int]:
    """``raw`` split, and its port (4222 when it names none); ``which`` starts the error."""
    parts = urlsplit(raw if "://" in raw else f"nats://{raw}")
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise BackendMisconfigured(
            f"{which} is not a NATS URL; expected nats://host:port or tls://host:port (a cluster: its "
            "nodes' URLs, comma-separated)"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise BackendMisconfigured(
            f"{which} has an invalid port; expected nats://host:port or tls://host:port with a port from "
            "1 to 65535 (a cluster: its nodes' URLs, comma-separated)"
        )
    return parts, port or 4222


def _credentials_part(entries: list[tuple[SplitResult, int]], origin: str) -> SplitResult:
    """The first entry whose user part carries credentials (any other must carry the same ones),
    else the first entry."""
    carrying = [parts for parts, _ in entries if parts.username]
    if len({(parts.username, parts.password) for parts in carrying}) > 1:
        raise BackendMisconfigured(
            f"{origin}: the URLs carry different credentials; give them once, with "
            "--aegis-external-nats-user/-password, -token or -creds"
        )
    return carrying[0] if carrying else entries[0][0]


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
