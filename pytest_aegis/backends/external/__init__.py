"""The ``external`` backend: servers someone else started (NATS in Kubernetes reached by a
port-forward, a shared PostgreSQL).

The harness never configures, stops or restarts these servers; it connects to them with the
credentials from the config (``--aegis-external-*`` / ini / ``AEGIS_EXTERNAL_*``) and keeps
what the tests create apart from everything else:

* **NATS** (:class:`ExternalBackend`): the settings are checked when the backend is made (a
  missing URL, a missing ``.creds`` file or CA file is an error naming the setting); the first
  use connects once, reads the server's version and whether JetStream is on, and fails with the
  URL (password redacted) and the reason when that does not work.  ``tls://`` without
  ``--aegis-external-nats-ca`` verifies the server against the system trust store (verification
  is never turned off); a private CA therefore fails the check with ``certificate verify
  failed`` and a hint to pass the CA.
* **Which tests apply** (:meth:`ExternalBackend.cannot_serve`): ``nats_server`` is the external
  server as it is.  ``nats_secure(...)`` / ``nats_server_factory(...)`` ask for a server the
  harness configures, so they are skipped, unless the spec asks for what the server offers:
  the same auth mode (from the credentials given: user/password, token, creds file or none) and
  the same TLS (``tls://`` or a server that requires TLS), JetStream only if the server has it,
  and nothing only a configured server has (mtls, a bad server certificate, permissions, users).
* **Isolation**: the reference service and the helpers use unique names per test
  (``svc-<random>``, ``aegis-rt-<random>``).  Streams (KV buckets included) that did not exist
  when the session first connected and whose description starts with ``pytest-aegis`` (the
  reference service's buckets; your own streams too, if you describe them so) are deleted when
  the session ends, by the process that owns the session (the xdist controller, never a
  worker).  Streams that existed before are never touched.
* **PostgreSQL** (:class:`ExternalPostgres`): the server at ``--aegis-external-pg-dsn``; the
  pool gives the session a template database of its own name (``aegis_template_<random>``) and
  drops it, and every database it made, at the end.
* ``stop()`` / ``kill()`` / ``restart()`` raise :class:`ExternalServerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Self
from urllib.parse import unquote, urlsplit

import nats.errors
import psycopg
from psycopg import conninfo

from pytest_aegis.app import run_sync
from pytest_aegis.backends.base import BackendUnavailable
from pytest_aegis.config import AegisConfig
from pytest_aegis.nats_config import Identity, NatsMaterial
from pytest_aegis.nats_connect import NatsConnectError, open_client
from pytest_aegis.nats_server import CLIENT_DEFAULTS
from pytest_aegis.nats_spec import NatsSpec
from pytest_aegis.postgres.handle import PostgresHandle
from pytest_aegis.session import SessionState

#: Streams made during the session with a description starting so are the session's to delete.
OWNED_DESCRIPTION = "pytest-aegis"
URL_FLAG = "--aegis-external-nats-url / AEGIS_EXTERNAL_NATS_URL"
CA_FLAG = "--aegis-external-nats-ca / AEGIS_EXTERNAL_NATS_CA"
CREDS_FLAG = "--aegis-external-nats-creds / AEGIS_EXTERNAL_NATS_CREDS"
DSN_FLAG = "--aegis-external-pg-dsn / AEGIS_EXTERNAL_PG_DSN"
NOT_OURS = (
    "Tests that stop, kill or restart a server need a server the harness runs: mark them "
    "@pytest.mark.aegis_backends('local', 'docker')."
)


class ExternalServerError(RuntimeError):
    """An operation that needs control of a server the external backend only connects to."""


def redact_url(url: str) -> str:
    """``url`` with any password (or token in the user part) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and not parts.username:
        return url
    user = parts.username or ""
    userinfo = f"{user}:***" if parts.password is not None else "***"
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{userinfo}@{host}").geturl()


def redact_dsn(dsn: str) -> str:
    """A PostgreSQL DSN (URL or ``key=value``) without its password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<an unparsable DSN>"
    user, host, port, db = (str(params.get(k) or "") for k in ("user", "host", "port", "dbname"))
    where = f"{host or 'localhost'}:{port or 5432}"
    return f"postgresql://{user + '@' if user else ''}{where}/{db or ''}"


def _refuse(action: str, what: str) -> NoReturn:
    raise ExternalServerError(
        f"{action}() is not available on the external backend: {what} was started outside the "
        f"harness and is not ours to {action}. {NOT_OURS}"
    )


# -- NATS ----------------------------------------------------------------------------


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
    """Validate the ``external_nats_*`` settings; raise :class:`BackendUnavailable` naming the
    setting that is wrong and how to fix it."""
    raw = config.external_nats_url
    if not raw:
        raise BackendUnavailable(
            f"--aegis-backend=external needs the NATS server's URL: set {URL_FLAG} "
            "(e.g. tls://127.0.0.1:4222 for a `kubectl port-forward svc/nats 4222`)"
        )
    parts = urlsplit(raw if "://" in raw else f"nats://{raw}")
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise BackendUnavailable(
            f"{URL_FLAG}: {redact_url(raw)!r} is not a NATS URL; expected nats://host:port or tls://host:port"
        )
    try:
        port = parts.port or 4222
    except ValueError:
        raise BackendUnavailable(f"{URL_FLAG}: {redact_url(raw)!r} has an invalid port") from None
    user, password, token, creds = (
        config.external_nats_user,
        config.external_nats_password,
        config.external_nats_token,
        config.external_nats_creds,
    )
    # Credentials in the URL count when the settings give none.
    if parts.username and not (user or token or creds):
        if parts.password is not None:
            user, password = unquote(parts.username), unquote(parts.password)
        else:
            token = unquote(parts.username)
    given = [name for name, value in (("user/password", user or password), ("token", token), ("creds", creds))
             if value]  # fmt: skip
    if len(given) > 1:
        raise BackendUnavailable(
            f"--aegis-backend=external: give one kind of NATS credentials, not {' and '.join(given)} "
            "(--aegis-external-nats-user/-password, --aegis-external-nats-token or "
            "--aegis-external-nats-creds)"
        )
    if bool(user) != bool(password):
        missing = "--aegis-external-nats-password" if user else "--aegis-external-nats-user"
        raise BackendUnavailable(
            f"--aegis-backend=external: a NATS user needs a password and vice versa; set {missing}"
        )
    if creds is not None and not creds.is_file():
        raise BackendUnavailable(
            f"{CREDS_FLAG}: the NATS creds file {creds} does not exist (or is not a file)"
        )
    ca = config.external_nats_ca
    if ca is not None and not ca.is_file():
        raise BackendUnavailable(f"{CA_FLAG}: the CA bundle {ca} does not exist (or is not a file)")
    if user:
        identity, auth = Identity(user, {"user": user, "password": password}), "userpass"
    elif token:
        identity, auth = Identity("token", {"token": token}), "token"
    elif creds is not None:
        identity, auth = Identity(creds.stem, {"user_credentials": str(creds)}), "jwt"
    else:
        identity, auth = Identity("anonymous", {}), "none"
    host = parts.hostname
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


@dataclass(frozen=True)
class ServerFacts:
    version: str
    server_name: str
    tls_required: bool
    jetstream: bool
    streams: frozenset[str]


def _client_tls(target: NatsTarget, tls: bool) -> ssl.SSLContext | None:
    """Verification always on: the given CA, else the system trust store."""
    if not tls and target.ca_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if target.ca_file is not None:
        context.load_verify_locations(cafile=str(target.ca_file))
    return context


def _reason(error: NatsConnectError) -> str:
    """The underlying reason, with a hint naming the setting that fixes it."""
    real: BaseException = error.cause or error
    text = str(real) or type(real).__name__
    if isinstance(real, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        text += f" (the server's certificate is not trusted: pass its CA with {CA_FLAG})"
    elif isinstance(real, nats.errors.Error) and re.search("authorization violation", text, re.I):
        text += " (check the NATS credentials: --aegis-external-nats-user/-password, -token or -creds)"
    elif "tls required" in text.lower():
        text += " (the server requires TLS: use a tls:// URL, with its CA via " + CA_FLAG + ")"
    return f"{type(real).__name__}: {text}"


async def _probe(kwargs: Mapping[str, Any], timeout: float, *, list_streams: bool) -> ServerFacts:
    options = {
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,  # 0 retries forever on a refused connection (nats-py)
        "reconnect_time_wait": 0,  # and the second attempt would wait 2 s
        "connect_timeout": max(1, round(timeout)),
    }
    try:
        client = await open_client({**kwargs, **options}, timeout=timeout * 3)
    except NatsConnectError as exc:
        raise BackendUnavailable(_reason(exc)) from None
    try:
        info: dict[str, Any] = dict(getattr(client, "_server_info", {}) or {})
        jetstream = False
        streams: set[str] = set()
        if info.get("jetstream"):
            js = client.jetstream(timeout=timeout)
            try:
                await js.account_info()
                jetstream = True
            except nats.errors.Error:
                jetstream = False  # the server has it, this account has not
            if jetstream and list_streams:
                streams = {s.config.name for s in await js.streams_info() if s.config.name}
        return ServerFacts(
            version=str(info.get("version", "?")),
            server_name=str(info.get("server_name", "")),
            tls_required=bool(info.get("tls_required")),
            jetstream=jetstream,
            streams=frozenset(streams),
        )
    finally:
        await client.close()


class ExternalNatsRuntime:
    """The external NATS server as a :class:`~pytest_aegis.nats_server.NatsRuntime`: no process,
    no log, and no lifecycle."""

    monitor_port: int | None = None

    def __init__(self, target: NatsTarget, facts: ServerFacts, *, name: str) -> None:
        self.name = name
        self.host = target.host
        self.port = target.port
        self.version = facts.version
        self._shown = target.url

    @property
    def pid(self) -> int | None:
        return None

    @property
    def is_running(self) -> bool:
        return True  # not ours to judge; a dead server shows as connection errors

    def logs(self) -> str:
        return ""  # the server's log is wherever its owner keeps it

    def log_size(self) -> int:
        return 0

    def stop(self) -> None:
        _refuse("stop", f"the NATS server at {self._shown}")

    def kill(self) -> None:
        _refuse("kill", f"the NATS server at {self._shown}")

    def restart(self) -> None:
        _refuse("restart", f"the NATS server at {self._shown}")

    def keep_instructions(self) -> str:
        return "external server (not started by the harness)"


# -- PostgreSQL ------------------------------------------------------------------------


class ExternalPostgres(PostgresHandle):
    """The PostgreSQL server at ``--aegis-external-pg-dsn``.  ``dsn_for`` keeps every parameter of
    the given DSN (sslmode, ...) and changes only the database."""

    #: A server other sessions use too: the pool names its template uniquely and drops it at the end.
    shared = True

    def __init__(self, dsn: str, *, name: str, version: str) -> None:
        params = conninfo.conninfo_to_dict(dsn)
        self._dsn = dsn
        self._dbname = str(params.get("dbname") or params.get("user") or "postgres")
        self.name = name
        self.host = str(params.get("host") or "localhost")
        self.port = int(str(params.get("port") or 5432).split(",")[0])
        self.user = str(params.get("user") or os.environ.get("PGUSER") or "")
        self.password = str(params.get("password") or os.environ.get("PGPASSWORD") or "")
        self.version = version

    def dsn_for(self, dbname: str) -> str:
        return conninfo.make_conninfo(self._dsn, dbname=dbname)

    @property
    def dsn(self) -> str:
        """The DSN as given (its database is where the admin connection goes)."""
        return self.dsn_for(self._dbname)

    @property
    def url(self) -> str:
        return redact_dsn(self._dsn)

    @property
    def is_running(self) -> bool:
        return True

    def logs(self) -> str:
        return ""

    def log_size(self) -> int:
        return 0

    def stop(self, timeout: float = 10.0) -> None:
        _refuse("stop", f"the PostgreSQL server at {self.url}")

    def kill(self) -> None:
        _refuse("kill", f"the PostgreSQL server at {self.url}")

    def restart(self) -> Self:
        _refuse("restart", f"the PostgreSQL server at {self.url}")

    def remove(self) -> None:
        """Nothing to remove: the pool drops the databases it made; the server is not ours."""

    def keep_instructions(self) -> str:
        return "external server (not started by the harness)"


# -- the backend ---------------------------------------------------------------------------


class ExternalBackend:
    """Servers the user started; see the module docstring for the rules."""

    name = "external"

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        self._config = config
        self._session = session
        self.target = nats_target(config)
        if config.external_pg_dsn:
            try:
                conninfo.conninfo_to_dict(config.external_pg_dsn)
            except psycopg.ProgrammingError as exc:
                raise BackendUnavailable(
                    f"{DSN_FLAG}: not a valid PostgreSQL DSN ({str(exc).splitlines()[0]})"
                ) from None
        # Under xdist every worker makes a backend; only the session's owner (the controller, or
        # the single process: see :meth:`own_session`) cleans up, once every worker is done.
        self._owner = False

    def own_session(self) -> None:
        """Called at session start by the process that owns the session (not an xdist worker):
        connect now and note the streams that exist, so that only newer ones are deleted at the end."""
        self._owner = True
        self.facts  # noqa: B018 (connects; a failure is kept and reported by each test that needs NATS)

    # -- NATS --------------------------------------------------------------------------

    def _connect_kwargs(self, tls: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"servers": [self.target.url], "name": "aegis-external-check"}
        if (context := _client_tls(self.target, tls)) is not None:
            kwargs["tls"] = context
        return kwargs | dict(self.target.identity.connect_kwargs)

    @functools.cached_property
    def _check(self) -> ServerFacts | BackendUnavailable:
        timeout = min(self._config.start_timeout, 10.0)
        try:
            return run_sync(
                lambda: _probe(self._connect_kwargs(self.target.tls), timeout, list_streams=self._owner)
            )
        except BackendUnavailable as exc:
            return BackendUnavailable(
                f"external NATS at {self.target.url} (as {self.target.identity.name}): cannot connect: {exc}"
            )

    @property
    def facts(self) -> ServerFacts:
        """What the server says about itself; connects once (the first use; a failure is kept, so
        each test reports it without trying again).  The stream names seen then are the ones the
        session will never delete."""
        if isinstance(self._check, BackendUnavailable):
            raise BackendUnavailable(str(self._check))
        return self._check

    @functools.cached_property
    def offer(self) -> NatsSpec:
        """The external server's security as a spec (what ``nats_secure`` must ask for to run)."""
        return NatsSpec(
            auth=self.target.auth,  # type: ignore[arg-type]
            tls=self.target.tls or self.facts.tls_required,
            jetstream=self.facts.jetstream,
        )

    def describe(self) -> str:
        facts = self.facts
        ca = f"CA {self.target.ca_file}" if self.target.ca_file else "system trust store"
        tls = f", TLS verified with the {ca}" if self.offer.tls else ""
        name = f" ({facts.server_name})" if facts.server_name else ""
        return (
            f"external (nats-server {facts.version} at {self.target.url}{name}: "
            f"{self.offer.label}{tls}, as {self.target.identity.name})"
        )

    def cannot_serve(self, spec: NatsSpec) -> str | None:
        """Why ``spec`` cannot run here (the skip reason), or ``None`` when the external server
        offers what it asks for."""
        offer = self.offer
        differences = []
        if spec.auth != offer.auth:
            differences.append(f"auth={spec.auth!r} (it has {offer.auth!r})")
        if spec.tls != offer.tls:
            differences.append(f"tls={spec.tls} (it has tls={offer.tls})")
        if spec.jetstream and not offer.jetstream:
            differences.append("jetstream (it has none)")
        if spec.mtls:
            differences.append("mtls")
        if spec.server_cert != "valid":
            differences.append(f"server_cert={spec.server_cert!r}")
        if spec.permissions or spec.users:
            differences.append("permissions/users")
        if not differences:
            return None
        return (
            f"nats_secure({spec.label}) needs a server the harness configures; the external backend "
            f"uses the server at {self.target.url} ({offer.label}), which lacks: {', '.join(differences)}"
        )

    def nats_material(self, spec: NatsSpec, directory: Path) -> NatsMaterial:
        """The external server's own credentials and CA (instead of material made for ``spec``)."""
        offer = self.offer
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return NatsMaterial(
            offer,
            directory,
            self.target.identity,
            {},
            {},
            ca_file=self.target.ca_file,
            client_tls=_client_tls(self.target, offer.tls),
        )

    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> ExternalNatsRuntime:
        return ExternalNatsRuntime(self.target, self.facts, name=name)

    def _delete_own_streams(self) -> list[str]:
        """Delete the streams this session made (see the module docstring); return their names."""
        before = self.facts.streams
        kwargs = self._connect_kwargs(self.offer.tls) | dict(CLIENT_DEFAULTS)
        timeout = min(self._config.start_timeout, 10.0)

        async def delete() -> list[str]:
            nc = await open_client(kwargs, timeout=timeout, target=self.target.url)
            try:
                js = nc.jetstream()
                deleted = []
                for info in await js.streams_info():
                    name = info.config.name
                    description = info.config.description or ""
                    if name and name not in before and description.startswith(OWNED_DESCRIPTION):
                        await js.delete_stream(name)
                        deleted.append(name)
                return deleted
            finally:
                await nc.close()

        return run_sync(lambda: asyncio.wait_for(delete(), timeout * 3))

    # -- PostgreSQL ----------------------------------------------------------------------

    @functools.cached_property
    def pg_version(self) -> str:
        dsn = self._dsn()
        try:
            with psycopg.connect(dsn, connect_timeout=int(min(self._config.start_timeout, 10))) as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise BackendUnavailable(
                f"external PostgreSQL at {redact_dsn(dsn)}: cannot connect: {reason} (check {DSN_FLAG})"
            ) from None
        return str(row[0]).split()[0] if row else "?"

    def _dsn(self) -> str:
        if not self._config.external_pg_dsn:
            raise BackendUnavailable(
                f"--aegis-backend=external needs the PostgreSQL server's DSN for the postgres fixtures: "
                f"set {DSN_FLAG} (a role allowed to CREATE DATABASE)"
            )
        return self._config.external_pg_dsn

    def describe_postgres(self) -> str:
        if not self._config.external_pg_dsn:
            return f"postgres: external, none configured (set {DSN_FLAG})"
        return f"postgres {self.pg_version}: external at {redact_dsn(self._dsn())}"

    def start_postgres(self, *, name: str) -> ExternalPostgres:
        return ExternalPostgres(self._dsn(), name=name, version=self.pg_version)

    def close(self) -> None:
        if self._owner and isinstance(self.__dict__.get("_check"), ServerFacts) and self.facts.jetstream:
            with contextlib.suppress(Exception):  # the session's end must not fail on it
                self._delete_own_streams()
