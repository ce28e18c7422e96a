"""Proxies that mirror what they stand in front of, so a service or a test's client can be wired
through them exactly as to the server: :class:`NatsFaultProxy` (``url``, ``connect_kwargs``,
``connect``, ``env``; ``aegis_app_factory(nats=proxy)``) and :class:`PostgresFaultProxy` (``dsn``,
``url``, ``env``, ``connect``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_aegis.faults.proxy import FaultProxy
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.postgres.handle import PostgresDatabase, PostgresHandle
from pytest_aegis.thirdparty.server import ThirdPartyServer, server_env

if TYPE_CHECKING:
    from nats.aio.client import Client

    from pytest_aegis.postgres.handle import Connection


class NatsFaultProxy(FaultProxy):
    """A :class:`FaultProxy` in front of a :class:`NatsServer`; :attr:`server` is that server as
    reached through the proxy (same process, logs and credentials)."""

    def __init__(self, target: NatsServer, *, name: str | None = None) -> None:
        super().__init__(target.host, target.port, name=name or f"proxy-{target.name}")
        self.target = target
        self.server: NatsServer = target.behind(self.host, self.port)

    @property
    def url(self) -> str:
        return self.server.url

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """As :meth:`NatsServer.connect_kwargs`, to the proxy's address."""
        return self.server.connect_kwargs(**overrides)

    async def connect(self, **overrides: Any) -> Client:
        """As :meth:`NatsServer.connect`, through the proxy."""
        return await self.server.connect(**overrides)

    def env(self, prefix: str = "AEGIS_NATS_", *, as_user: str | None = None) -> dict[str, str]:
        """As :meth:`NatsServer.env`, pointing at the proxy."""
        return self.server.env(prefix, as_user=as_user)


class PostgresFaultProxy(FaultProxy):
    """A :class:`FaultProxy` in front of a PostgreSQL server (or one database on it: ``dsn`` is
    then that database's); :attr:`server` is the server as reached through the proxy."""

    def __init__(self, target: PostgresHandle | PostgresDatabase, *, name: str | None = None) -> None:
        handle = target.server if isinstance(target, PostgresDatabase) else target
        super().__init__(handle.host, handle.port, name=name or f"proxy-{handle.name}")
        self.target = target
        self.server: PostgresHandle = handle.behind(self.host, self.port)
        self.database = PostgresDatabase(
            self.server, target.name if isinstance(target, PostgresDatabase) else "postgres"
        )

    @property
    def dsn(self) -> str:
        return self.database.dsn

    @property
    def url(self) -> str:
        """The DSN without the password."""
        return self.server.url

    def env(self) -> dict[str, str]:
        """libpq's variables (and ``DATABASE_URL``) pointing at the proxy."""
        return self.server.env() | {"PGDATABASE": self.database.name, "DATABASE_URL": self.dsn}

    def connect(self, **kwargs: object) -> Connection:
        """A psycopg connection through the proxy (as :meth:`PostgresDatabase.connect`)."""
        return self.database.connect(**kwargs)


class ServerFaultProxy(FaultProxy):
    """A :class:`FaultProxy` in front of a third-party server: :attr:`url` and :meth:`env` as the
    server's, pointing at the proxy."""

    def __init__(self, target: ThirdPartyServer, *, name: str | None = None) -> None:
        super().__init__(target.host, target.port, name=name or f"proxy-{target.name}")
        self.target = target

    @property
    def url(self) -> str:
        """The server's URL with the proxy's address."""
        return self.target.url.replace(
            f"{self.target.host}:{self.target.port}", f"{self.host}:{self.port}", 1
        )

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """As :meth:`ThirdPartyServer.env`, pointing at the proxy."""
        return server_env(self.target.spec.name, self.url, self.host, self.port, prefix)


def proxy_for(target: object, *, name: str | None = None) -> FaultProxy:
    """The proxy that mirrors ``target``: a :class:`NatsServer`, a PostgreSQL server or database,
    or a ``(host, port)`` pair (a bare :class:`FaultProxy`)."""
    if isinstance(target, NatsServer):
        return NatsFaultProxy(target, name=name)
    if isinstance(target, PostgresHandle | PostgresDatabase):
        return PostgresFaultProxy(target, name=name)
    if isinstance(target, ThirdPartyServer):
        return ServerFaultProxy(target, name=name)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], int):
        return FaultProxy(str(target[0]), target[1], name=name or "proxy")
    raise TypeError(
        f"aegis_proxy({target!r}): expected a NatsServer (nats_server, nats_secure, a cluster node), "
        "a PostgreSQL server or database (postgres_server, postgres_db), a third-party server "
        "(aegis_server_factory), or a (host, port) pair"
    )
