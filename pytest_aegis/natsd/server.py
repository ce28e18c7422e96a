"""The :class:`NatsServer` handle that the NATS fixtures return.

It is the same for every backend: a backend supplies a :class:`NatsRuntime`
(the running server: its ports, log and lifecycle) and the handle adds what a
test needs on top: URLs, the matching client credentials and TLS context, and
``connect()`` with overrides for negative tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from nats.aio.client import Client

from pytest_aegis.clients import hand_out_nats
from pytest_aegis.config import DEFAULT_START_TIMEOUT
from pytest_aegis.faults.disk import PowerLoss
from pytest_aegis.matrix import record
from pytest_aegis.natsd.auth import CREDENTIAL_ENV
from pytest_aegis.natsd.connect import open_client
from pytest_aegis.natsd.lameduck import LAME_DUCK_TIMEOUT, enter_lame_duck, wait_until_exited
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.reload import RELOAD_TIMEOUT, reload_server
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.natsd.store import StoreDamage, StoreFiles, corrupt_store
from pytest_aegis.pausing import hold_paused

CLIENT_DEFAULTS: Mapping[str, Any] = {
    "connect_timeout": 2,
    "reconnect_time_wait": 0.05,
    "max_reconnect_attempts": 100,
}
#: Every variable :meth:`NatsServer.env` can give a service, after its ``AEGIS_NATS_`` prefix.
ENV_NAMES: tuple[str, ...] = ("URL", *dict.fromkeys(CREDENTIAL_ENV.values()), "TLS_CA", "TLS_CERT", "TLS_KEY")
#: The overall deadline of :meth:`NatsServer.connect` when the pool does not set one.
CONNECT_DEADLINE = DEFAULT_START_TIMEOUT


class NatsRuntime(Protocol):
    """A running nats-server as a backend provides it."""

    name: str
    host: str
    port: int
    monitor_port: int | None
    version: str

    @property
    def pid(self) -> int | None: ...
    @property
    def is_running(self) -> bool: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    @property
    def is_paused(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def reload_config(self, *, signal: bool = True) -> None: ...
    def signal(self, name: str) -> None: ...
    def stopped_store(self) -> StoreFiles: ...
    def power_loss(self) -> PowerLoss: ...
    def keep_instructions(self) -> str: ...


class NatsServer:
    """A real nats-server started for the tests.

    >>> nc = await nats_secure.connect()                       # valid credentials and TLS
    >>> await nats_secure.connect(password="wrong")            # override for a negative test
    >>> nats_secure.connect_kwargs(tls=None)                   # drop an argument: None removes it
    """

    def __init__(
        self, runtime: NatsRuntime, material: NatsMaterial, *, connect_deadline: float = CONNECT_DEADLINE
    ) -> None:
        self._runtime = runtime
        #: ``single``, or ``cluster`` for a cluster's node (the security matrix's topology).
        self.topology = "single"
        self.material = material
        #: Seconds :meth:`connect` may take in all (the session's ``aegis_start_timeout``).
        self.connect_deadline = connect_deadline

    # -- identity ------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._runtime.name

    @property
    def runtime(self) -> NatsRuntime:
        """Where the server runs: the backend's handle on its process or container."""
        return self._runtime

    @property
    def spec(self) -> NatsSpec:
        return self.material.spec

    @property
    def host(self) -> str:
        return self._runtime.host

    @property
    def port(self) -> int:
        return self._runtime.port

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the server listens on: its client port and its monitoring port, if any."""
        monitor = self._runtime.monitor_port
        return (self.port,) if monitor is None else (self.port, monitor)

    @property
    def url(self) -> str:
        """``nats://host:port``, or ``tls://host:port`` when the server requires TLS."""
        scheme = "tls" if self.spec.tls else "nats"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        """The HTTP monitoring endpoint (``/varz``, ``/healthz``, ``/jsz``)."""
        port = self._runtime.monitor_port
        return f"http://{self.host}:{port}" if port else None

    @property
    def version(self) -> str:
        return self._runtime.version

    @property
    def pid(self) -> int | None:
        return self._runtime.pid

    @property
    def is_running(self) -> bool:
        return self._runtime.is_running

    @property
    def ca_file(self) -> Path | None:
        """The CA bundle clients must trust (``None`` without TLS)."""
        return self.material.ca_file

    @property
    def credentials(self) -> Mapping[str, Any]:
        """The default user's ``nats.connect`` keywords (password, token, nkeys seed or creds)."""
        return dict(self.material.default.connect_kwargs)

    @property
    def users(self) -> tuple[str, ...]:
        """The names of the extra users (``connect(as_user=name)``)."""
        return tuple(self.material.users)

    # -- connecting ----------------------------------------------------------

    def connect_kwargs(self, *, as_user: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for :func:`nats.connect` that succeed against this server.

        ``as_user`` picks one of the extra users of the spec.  ``overrides`` replace
        arguments; an override of ``None`` removes the argument (``password=None``:
        send no password; ``tls=None``: no session-CA context, so nats-py falls
        back to the system trust store, which does not trust the session CA).
        """
        kwargs: dict[str, Any] = {"servers": [self.url], "name": f"aegis-test:{self.name}", **CLIENT_DEFAULTS}
        if self.material.client_tls is not None:
            kwargs["tls"] = self.material.client_tls
        kwargs.update(self.material.identity(as_user).connect_kwargs)
        kwargs.update(overrides)
        return {key: value for key, value in kwargs.items() if value is not None}

    async def connect(
        self, *, as_user: str | None = None, deadline: float | None = None, **overrides: Any
    ) -> Client:
        """A connected nats-py client (see :meth:`connect_kwargs`).  Made during a test's call
        and not closed by the test, it is closed when the call ends (:mod:`pytest_aegis.clients`).

        Never waits forever: raises :class:`~pytest_aegis.errors.NatsConnectError` with the
        reason (``tls``, ``auth``, ``timeout``, ...) and the server's log lines from the attempt
        at the first error no retry can fix, or after ``deadline`` seconds (default
        :attr:`connect_deadline`).
        """
        client = await open_client(
            self.connect_kwargs(as_user=as_user, **overrides),
            timeout=self.connect_deadline if deadline is None else deadline,
            server=self,
        )
        record.connected(self.spec, client, self.topology)
        hand_out_nats(client)
        return client

    def env(self, prefix: str = "AEGIS_NATS_", *, as_user: str | None = None) -> dict[str, str]:
        """Environment variables that point a service at this server (as the
        reference service reads them): URL, credentials (the default user's, or ``as_user``'s),
        CA and client cert.  The names after the prefix are :data:`ENV_NAMES`."""
        out = {f"{prefix}URL": self.url}
        creds = self.material.identity(as_user).connect_kwargs
        out |= {f"{prefix}{CREDENTIAL_ENV[key]}": str(v) for key, v in creds.items() if key in CREDENTIAL_ENV}
        if self.material.ca_file is not None:
            out[f"{prefix}TLS_CA"] = str(self.material.ca_file)
        if self.material.client_cert_files is not None:
            out[f"{prefix}TLS_CERT"] = str(self.material.client_cert_files.cert)
            out[f"{prefix}TLS_KEY"] = str(self.material.client_cert_files.key)
        return out

    # -- JWT helpers for negative tests -----------------------------------------

    def issue_user_creds(
        self,
        name: str,
        *,
        permissions: Mapping[str, Any] | None = None,
        expires_at: dt.datetime | None = None,
        foreign: bool = False,
    ) -> Path:
        """(``auth="jwt"`` only) Write a ``.creds`` file for a new user and return its path.

        ``expires_at`` in the past gives an expired user; ``foreign=True`` a user
        signed by an account this server's operator never signed.
        """
        operator = self.material.operator
        if operator is None:
            raise ValueError(f"issue_user_creds needs auth='jwt'; this server has auth={self.spec.auth!r}")
        if foreign:
            creds = operator.issue_foreign_user(name)
        else:
            creds = operator.issue_user(
                name, permissions=dict(permissions) if permissions else None, expires_at=expires_at
            )
        return creds.write(self.material.directory / f"{name}.creds")

    # -- lifecycle -----------------------------------------------------------

    def logs(self) -> str:
        """The server's log so far (all of its starts)."""
        return self._runtime.logs()

    def log_size(self) -> int:
        return self._runtime.log_size()

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM)."""
        self._runtime.stop()

    def kill(self) -> None:
        """``kill -9``: no graceful shutdown, as a crash."""
        self._runtime.kill()

    def restart(self) -> None:
        """Stop if running, then start again on the same port with the same JetStream store."""
        self._runtime.restart()

    @property
    def is_paused(self) -> bool:
        return self._runtime.is_paused

    def pause(self) -> None:
        """Freeze the server (SIGSTOP locally, the engine's pause on docker) until :meth:`resume`:
        its connections stay open and it answers nothing, so requests and new connects time out."""
        self._runtime.pause()

    def resume(self) -> None:
        """Let a paused server run again (nothing when it is not paused)."""
        self._runtime.resume()

    def lame_duck(self, *, wait_exit: bool = False, timeout: float = LAME_DUCK_TIMEOUT) -> list[str]:
        """Put the server into its own lame-duck mode, as operators do before a restart (SIGUSR2,
        what ``nats-server --signal ldm`` sends): it stops accepting clients, hands its Raft
        leaderships (JetStream meta, streams, consumers) to other nodes, tells its clients and
        routes to go elsewhere, closes its clients after ``lame_duck_grace_period`` and exits by
        itself within ``lame_duck_duration`` (the spec's keywords; nats-server's defaults are
        10 s and 2 min).  :meth:`restart` brings it back with its store.

        Returns its log lines from the signal to ``Entering lame duck mode`` (within ``timeout``
        seconds); with ``wait_exit``, returns once it has exited.  Raises
        :class:`~pytest_aegis.LameDuckError` when it did neither in time,
        :class:`~pytest_aegis.ExternalServerError` on the external backend."""
        lines = enter_lame_duck(self, timeout=timeout)
        if wait_exit:
            wait_until_exited(self)
        return lines

    def corrupt(
        self, stream: str, *, kind: str, what: str = "blocks", seed: int = 0, group: str | None = None
    ) -> StoreDamage:
        """Damage the JetStream store of this *stopped* server, as a failing disk would:
        ``kind="bitflip"`` (one bit of each file, at a place drawn from ``seed``), ``"truncate"``
        (each file cut to half its size) or ``"delete"``; ``what="blocks"`` (``stream``'s message
        blocks) or ``"snapshot"`` (the snapshots of its Raft group ``group``: a replicated stream;
        :meth:`NatsCluster.corrupt` finds the group).  Then :meth:`restart` it and see what the
        server, or the cluster, makes of it.  Returns what was done, file by file.

        :class:`ValueError` for a bad argument or when there is no such file (the message lists
        the store's files); :class:`RuntimeError` while the server runs;
        :class:`~pytest_aegis.ExternalServerError` on the external backend."""
        store = self._runtime.stopped_store()
        return corrupt_store(
            store, server=self.name, stream=stream, kind=kind, what=what, seed=seed, group=group
        )

    def power_loss(self) -> PowerLoss:
        """Cut the power: the server dies at once (SIGKILL) and its JetStream store loses every
        write not yet fsynced (nats-server syncs every ``sync_interval``: 2 min by default,
        ``"always"`` for every write).  Needs the spec's ``power_loss=True`` (the store on a FUSE
        filesystem that keeps unsynced writes apart).  Then :meth:`restart` it and see what it
        kept.  Returns what was lost, file by file.  :class:`ValueError` without
        ``power_loss=True``; :class:`~pytest_aegis.ExternalServerError` on the external backend."""
        return self._runtime.power_loss()

    def paused(self) -> AbstractContextManager[None]:
        """``with server.paused(): ...``: paused for the block, resumed however it ends."""
        return hold_paused(self)

    def reload(self, *, timeout: float = RELOAD_TIMEOUT, **changes: Any) -> list[str]:
        """Change the server's config live: rewrite it with ``changes``, signal the server to
        reload it (SIGHUP, as ``nats-server --signal reload``), and return its log lines from the
        signal to ``Reloaded server configuration``, within ``timeout`` seconds.

        ``changes`` (:data:`~pytest_aegis.natsd.reload.CHANGES`): ``password`` (the default
        user's), ``users`` (the extra users, replacing them all, in the spec's shape),
        ``permissions`` (the default user's), ``server_cert`` (a newly issued certificate of that
        kind).  Afterwards :meth:`connect_kwargs`, :meth:`connect` and :meth:`env` give the new
        credentials, and a restart keeps them.  Raises :class:`~pytest_aegis.SpecError` for a bad
        change, :class:`~pytest_aegis.NatsReloadError` with the server's lines when it did not
        reload (nothing changed then), :class:`~pytest_aegis.ExternalServerError` on the external
        backend.
        """
        return reload_server(self, changes, timeout=timeout)

    def keep_instructions(self) -> str:
        return self._runtime.keep_instructions()

    def behind(self, host: str, port: int) -> NatsServer:
        """This server as reached at ``host:port`` (a proxy in front of it): the same process,
        logs and credentials, another address in :attr:`url`, :meth:`connect_kwargs` and
        :meth:`env`."""
        return _Readdressed(self._runtime, self.material, host, port, connect_deadline=self.connect_deadline)

    def __repr__(self) -> str:
        return f"<NatsServer {self.name} {self.url} ({self.spec.label})>"


class _Readdressed(NatsServer):
    """A :class:`NatsServer` at another address (:meth:`NatsServer.behind`)."""

    def __init__(
        self, runtime: NatsRuntime, material: NatsMaterial, host: str, port: int, *, connect_deadline: float
    ) -> None:
        super().__init__(runtime, material, connect_deadline=connect_deadline)
        self._host, self._port = host, port

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def monitor_url(self) -> str | None:
        port = self._runtime.monitor_port  # the monitor is not proxied
        return f"http://{self._runtime.host}:{port}" if port else None
