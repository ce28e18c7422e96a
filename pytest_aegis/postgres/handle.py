"""What every PostgreSQL server handle offers, whichever backend runs it.

The fixtures, the databases module and the helpers use only this surface, so a
local postmaster, a container and an existing server are interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self
from urllib.parse import quote

from pytest_aegis.clients import hand_out
from pytest_aegis.pausing import hold_paused

if TYPE_CHECKING:
    import psycopg

    Connection = psycopg.Connection[tuple[object, ...]]

#: libpq's ``connect_timeout`` (whole seconds) for every connection the harness opens.
CONNECT_TIMEOUT = 10


class PostgresHandle(ABC):
    """A PostgreSQL server reachable over TCP with password auth."""

    #: A server other sessions use too (the external backend's): the pool gives the session a
    #: template of its own name and drops what it made, instead of stopping the server.
    shared: ClassVar[bool] = False
    name: str
    host: str
    port: int
    user: str
    password: str
    version: str

    def dsn_for(self, dbname: str) -> str:
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    @property
    def dsn(self) -> str:
        """``postgresql://<user>:<password>@<host>:<port>/postgres``."""
        return self.dsn_for("postgres")

    def env(self) -> dict[str, str]:
        """libpq's environment variables for this server (for subprocesses under test)."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": "postgres",
            "DATABASE_URL": self.dsn,
        }

    @property
    @abstractmethod
    def is_running(self) -> bool: ...

    @abstractmethod
    def logs(self) -> str: ...

    @abstractmethod
    def log_size(self) -> int: ...

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (fast: disconnect clients); the server can be restarted."""

    @abstractmethod
    def kill(self) -> None:
        """Kill abruptly, as a crash would."""

    @abstractmethod
    def restart(self) -> Self:
        """Stop if running and start again on the same host and port, with the same data."""

    @property
    @abstractmethod
    def is_paused(self) -> bool: ...

    @abstractmethod
    def pause(self) -> None:
        """Freeze the server (SIGSTOP of every process locally, the engine's pause on docker)
        until :meth:`resume`: connections stay open, nothing is answered, new logins hang."""

    @abstractmethod
    def resume(self) -> None:
        """Let a paused server run again (nothing when it is not paused)."""

    def paused(self) -> AbstractContextManager[None]:
        """``with server.paused(): ...``: paused for the block, resumed however it ends."""
        return hold_paused(self)

    @property
    def url(self) -> str:
        """The DSN without the password (safe to print)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"

    def keep_instructions(self) -> str:
        """How to reach and stop the server after an ``--aegis-keep`` session."""
        return "left running"

    def remove(self) -> None:
        """Stop and delete what the server leaves behind (files, container).  Default: stop."""
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.host}:{self.port}, version {self.version})"

    def behind(self, host: str, port: int) -> PostgresHandle:
        """This server as reached at ``host:port`` (a proxy in front of it): the same server and
        credentials, another address in :attr:`dsn` and :meth:`env`; its lifecycle is the server's."""
        return _Readdressed(self, host, port)


class _Readdressed(PostgresHandle):
    """A :class:`PostgresHandle` at another address (:meth:`PostgresHandle.behind`)."""

    def __init__(self, server: PostgresHandle, host: str, port: int) -> None:
        self._server = server
        self.name, self.host, self.port = server.name, host, port
        self.user, self.password, self.version = server.user, server.password, server.version

    @property
    def is_running(self) -> bool:
        return self._server.is_running

    def logs(self) -> str:
        return self._server.logs()

    def log_size(self) -> int:
        return self._server.log_size()

    def stop(self, timeout: float = 10.0) -> None:
        self._server.stop(timeout)

    def kill(self) -> None:
        self._server.kill()

    def restart(self) -> Self:
        self._server.restart()
        return self

    @property
    def is_paused(self) -> bool:
        return self._server.is_paused

    def pause(self) -> None:
        self._server.pause()

    def resume(self) -> None:
        self._server.resume()

    def remove(self) -> None:
        """Nothing: the server is not the view's to remove."""


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on a :class:`PostgresHandle` (what ``postgres_db`` returns)."""

    server: PostgresHandle
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn_for(self.name)

    def connect(self, **kwargs: object) -> Connection:
        """A new psycopg connection to this database (close it, or use ``with``; made during a
        test's call and left open, it is closed when the call ends: :mod:`pytest_aegis.clients`);
        it gives up after ``connect_timeout`` seconds (default :data:`CONNECT_TIMEOUT`)."""
        conn = self.open(**kwargs)
        hand_out(conn)
        return conn

    def open(self, **kwargs: object) -> Connection:
        """:meth:`connect` for the harness's own connections, which outlive a test's call."""
        import psycopg

        timeout = kwargs.pop("connect_timeout", CONNECT_TIMEOUT)
        return psycopg.connect(self.dsn, connect_timeout=timeout, **kwargs)  # type: ignore[arg-type]
