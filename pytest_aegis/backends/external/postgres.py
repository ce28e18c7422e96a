"""The external PostgreSQL server (``--aegis-external-pg-dsn``): a handle that keeps the DSN's
parameters and changes only the database, and is never stopped or removed by the harness."""

from __future__ import annotations

import os
from typing import ClassVar, Self

import psycopg
from psycopg import conninfo

from pytest_aegis.backends.external.target import DSN_FLAG, refuse
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable
from pytest_aegis.postgres.handle import CONNECT_TIMEOUT, PostgresHandle


def redact_dsn(dsn: str) -> str:
    """A PostgreSQL DSN (URL or ``key=value``) without its password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<an unparsable DSN>"
    user, host, port, db = (str(params.get(k) or "") for k in ("user", "host", "port", "dbname"))
    where = f"{host or 'localhost'}:{port or 5432}"
    return f"postgresql://{user + '@' if user else ''}{where}/{db or ''}"


def check_dsn(dsn: str, origin: str = DSN_FLAG) -> None:
    """Raise :class:`BackendMisconfigured` naming the setting (``origin``: where it was set) when
    ``dsn`` does not parse."""
    try:
        conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise BackendMisconfigured(
            f"{origin}: not a valid PostgreSQL DSN ({str(exc).splitlines()[0]})"
        ) from None


def server_version(dsn: str, timeout: float) -> str:
    """Log in once and read the server's version; raise :class:`BackendUnavailable` with the DSN
    (no password) and the reason when that fails."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(2, min(round(timeout), CONNECT_TIMEOUT))) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailable(
            f"external PostgreSQL at {redact_dsn(dsn)}: cannot connect: {reason} (check {DSN_FLAG})"
        ) from None
    return str(row[0]).split()[0] if row else "?"


class ExternalPostgres(PostgresHandle):
    """The PostgreSQL server at ``--aegis-external-pg-dsn``.  ``dsn_for`` keeps every parameter of
    the given DSN (sslmode, ...) and changes only the database."""

    #: A server other sessions use too: the pool names its template uniquely and drops it at the end.
    shared: ClassVar[bool] = True

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
        refuse("stop", f"the PostgreSQL server at {self.url}")

    def kill(self) -> None:
        refuse("kill", f"the PostgreSQL server at {self.url}")

    def restart(self) -> Self:
        refuse("restart", f"the PostgreSQL server at {self.url}")

    @property
    def is_paused(self) -> bool:
        return False

    def pause(self) -> None:
        refuse("pause", f"the PostgreSQL server at {self.url}")

    def resume(self) -> None:
        refuse("resume", f"the PostgreSQL server at {self.url}")

    def remove(self) -> None:
        """Nothing to remove: the pool drops the databases it made; the server is not ours."""

    def keep_instructions(self) -> str:
        return "external server (not started by the harness)"
