"""The ``external`` backend: :class:`ExternalBackend`, which starts each kind of server with this
package's modules (see the package's docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_aegis.aio import run_sync
from pytest_aegis.backends.base import Backend
from pytest_aegis.backends.external.nats import (
    OWNED_DESCRIPTION,
    Cleanup,
    ExternalNatsRuntime,
    ServerFacts,
    client_tls,
    delete_own_streams,
    one_attempt,
    probe,
)
from pytest_aegis.backends.external.target import DSN_FLAG, nats_target, redact_url
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendUnavailable, ExternalServerError
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState

if TYPE_CHECKING:
    from pytest_aegis.backends.external.postgres import ExternalPostgres
    from pytest_aegis.backends.external.thirdparty import ExternalServer
    from pytest_aegis.certs import AegisCA
    from pytest_aegis.natsd.pool import NatsPool
    from pytest_aegis.thirdparty.runtime import ServerLaunch

#: Seconds each node may take to answer the end-of-session cleanup's connect (a dead node refuses
#: at once; a frozen one is passed over after this, for the next).
CLEANUP_CONNECT_TIMEOUT = 2.0

__all__ = ["ExternalBackend", "ExternalServerError", "redact_url"]


class ExternalBackend(Backend):
    """Servers the user started; see the module docstring for the rules."""

    #: Registered ``eager``: the session's owner connects when the session starts, so it knows which
    #: streams existed before (it deletes only newer ones).
    name: ClassVar[str] = "external"

    def __init__(self, config: AegisConfig, session: SessionState) -> None:
        super().__init__(config, session)
        self.target = nats_target(config)
        if config.external_pg_dsn:
            from pytest_aegis.backends.external.postgres import check_dsn
            from pytest_aegis.postgres import require_psycopg

            require_psycopg()
            check_dsn(config.external_pg_dsn, config.origin("external_pg_dsn"))
        # Under xdist every worker makes a backend; only the session's owner (the controller, or
        # the single process: see :meth:`own_session`) cleans up, once every worker is done.
        self._owner = False
        self._since = dt.datetime.now(dt.UTC)  # streams of the session's are created after this
        self._cleanup: Cleanup | None = None

    def own_session(self) -> None:
        """Connect now and note the streams that exist, so that only newer ones are deleted at the
        end (a failure is kept and reported by each test that needs NATS)."""
        self._owner = True
        with contextlib.suppress(BackendUnavailable):
            self.facts  # noqa: B018 (connects)

    # -- NATS --------------------------------------------------------------------------

    @property
    def _timeout(self) -> float:
        return min(self.config.start_timeout, 10.0)

    def _connect_kwargs(self, tls: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"servers": list(self.target.urls), "name": "aegis-external-check"}
        if (context := client_tls(self.target, tls)) is not None:
            kwargs["tls"] = context
        return kwargs | dict(self.target.identity.connect_kwargs)

    @functools.cached_property
    def _check(self) -> ServerFacts | BackendUnavailable:
        kwargs = self._connect_kwargs(self.target.tls)
        try:
            return run_sync(lambda: probe(kwargs, self._timeout, list_streams=self._owner))
        except BackendUnavailable as exc:
            who = f"external NATS at {self.target.shown} (as {self.target.identity.name})"
            return BackendUnavailable(f"{who}: cannot connect: {exc}")

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
            auth=self.target.auth,
            tls=self.target.tls or self.facts.tls_required,
            jetstream=self.facts.jetstream,
        )

    def describe(self) -> str:
        facts = self.facts
        ca = f"CA {self.target.ca_file}" if self.target.ca_file else "system trust store"
        tls = f", TLS verified with the {ca}" if self.offer.tls else ""
        if len(self.target.urls) == 1:
            where = f"at {self.target.url}" + (f" ({facts.server_name})" if facts.server_name else "")
        else:  # the version is the node's that answered first
            answered = f", {facts.server_name} answering" if facts.server_name else ""
            where = f"on {self.target.where.removeprefix('the ')}{answered}"
        return (
            f"external (nats-server {facts.version} {where}: {self.offer.label}{tls}, "
            f"as {self.target.identity.name})"
        )

    def nats_pool(self, ca: Callable[[], AegisCA], *, keep: bool, connect_deadline: float) -> NatsPool:
        """Handles that give clients and the service every URL (:mod:`.servers`)."""
        from pytest_aegis.backends.external.servers import ExternalNatsPool

        return ExternalNatsPool(
            self, self.session, ca, urls=self.target.urls, keep=keep, connect_deadline=connect_deadline
        )

    def cannot_cluster(self) -> str | None:
        return f"nats_cluster needs servers the harness starts; the external backend uses {self.target.where}"

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
            f"uses {self.target.where} ({offer.label}), which lacks: {', '.join(differences)}"
        )

    def nats_material(self, spec: NatsSpec, directory: Path, ca: Callable[[], AegisCA]) -> NatsMaterial:
        """The external server's own credentials and CA (instead of material made for ``spec``)."""
        offer = self.offer
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return NatsMaterial(
            offer,
            directory,
            self.target.identity,
            ca_file=self.target.ca_file,
            client_tls=client_tls(self.target, offer.tls),
        )

    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> ExternalNatsRuntime:
        return ExternalNatsRuntime(self.target, self.facts, name=name)

    def _delete_own_streams(self) -> Cleanup:
        """Delete the streams this session made (see the module docstring) through any node that
        answers, within a deadline, without reconnect loops."""
        kwargs = self._connect_kwargs(self.offer.tls) | one_attempt(CLEANUP_CONNECT_TIMEOUT)
        before, timeout = self.facts.streams, self._timeout
        deadline = timeout * (len(self.target.urls) + 1)
        try:
            return run_sync(
                lambda: asyncio.wait_for(delete_own_streams(kwargs, before, timeout=timeout), deadline)
            )
        except TimeoutError:
            return Cleanup(unreached=f"not done within {deadline:g} s")

    def notices(self) -> list[str]:
        """One line when the end-of-session cleanup could not remove all the session made."""
        cleanup = self._cleanup
        if cleanup is None:
            return []
        if cleanup.unreached is not None:
            since = self._since.strftime("%Y-%m-%d %H:%M:%S UTC")
            return [
                f"external NATS: could not remove what this session made ({cleanup.unreached}); left "
                "behind: the streams and KV buckets it made "
                f"(description starting {OWNED_DESCRIPTION!r}, created since {since})"
                + (f", except {', '.join(cleanup.deleted)}, deleted" if cleanup.deleted else "")
            ]
        if cleanup.left:
            left = ", ".join(dict.fromkeys(cleanup.left))
            return [f"external NATS: could not remove what this session made: {left} left behind"]
        return []

    # -- PostgreSQL ----------------------------------------------------------------------

    @functools.cached_property
    def pg_version(self) -> str:
        from pytest_aegis.backends.external.postgres import server_version

        return server_version(self._dsn(), self._timeout)

    def _dsn(self) -> str:
        if not self.config.external_pg_dsn:
            raise BackendUnavailable(
                f"--aegis-backend=external needs the PostgreSQL server's DSN for the postgres fixtures: "
                f"set {DSN_FLAG} (a role allowed to CREATE DATABASE)"
            )
        return self.config.external_pg_dsn

    def describe_postgres(self) -> str:
        if not self.config.external_pg_dsn:
            return f"postgres: external, none configured (set {DSN_FLAG})"
        from pytest_aegis.backends.external.postgres import redact_dsn

        return f"postgres {self.pg_version}: external at {redact_dsn(self._dsn())}"

    def start_postgres(self, *, name: str) -> ExternalPostgres:
        from pytest_aegis.backends.external.postgres import ExternalPostgres

        return ExternalPostgres(self._dsn(), name=name, version=self.pg_version)

    def server_runtime(self, launch: ServerLaunch) -> ExternalServer:
        """An existing third-party server, at the URL ``AEGIS_EXTERNAL_<NAME>_URL`` gives."""
        from pytest_aegis.backends.external.thirdparty import ExternalServer

        return ExternalServer(launch)

    def close(self) -> None:
        """The session's owner removes the streams the session made, once (:meth:`notices` says what
        it could not)."""
        facts = self.__dict__.get("_check")
        if self._owner and self._cleanup is None and isinstance(facts, ServerFacts) and facts.jetstream:
            try:
                self._cleanup = self._delete_own_streams()
            except Exception as exc:  # the session's end must not fail on it: reported instead
                self._cleanup = Cleanup(unreached=f"{type(exc).__name__}: {exc}")
