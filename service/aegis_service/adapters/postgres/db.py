"""PostgreSQL access for the HTTP side: a small psycopg connection pool and the schema check that
``/health`` and ``/readiness`` report (the :class:`~aegis_service.health.SchemaProbe`). The pipeline's
long-running tasks (relay, consumer) hold their own connections, so a slow request never starves them
and vice versa."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aegis_service.domain.errors import Unavailable, first_line
from aegis_service.domain.models import SchemaStatus
from aegis_service.migrations import REQUIRED_TABLES, head

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2
CHECKOUT_TIMEOUT = 2.0
#: Seconds /health and /readiness wait for the schema check, whatever the database does.
STATUS_TIMEOUT = 1.0
STATEMENT_TIMEOUT_MS = 5000
RETRY_AFTER = 1.0

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]


def connect_kwargs() -> dict[str, Any]:
    """Connection options shared by every connection the service opens."""
    return {"connect_timeout": CONNECT_TIMEOUT, "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"}


async def connect(dsn: str, *, autocommit: bool = False) -> AsyncConn:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, **connect_kwargs())


class Database:
    """The pool (opened without waiting: the service starts while PostgreSQL is down)."""

    def __init__(self, dsn: str, max_size: int = 8) -> None:
        self.dsn = dsn
        self.pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=CHECKOUT_TIMEOUT,
            kwargs=connect_kwargs(),
            check=AsyncConnectionPool.check_connection,
            name="aegis",
        )
        self._check: asyncio.Task[SchemaStatus] | None = None

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        if self._check is not None:
            self._check.cancel()
        await self.pool.close(timeout=1.0)

    @asynccontextmanager
    async def transaction(self, timeout: float = CHECKOUT_TIMEOUT) -> AsyncIterator[AsyncConn]:
        """A pooled connection inside a transaction; a lost database becomes :class:`Unavailable` (503)."""
        try:
            async with self.pool.connection(timeout) as conn, conn.transaction():
                yield conn
        except PoolTimeout:
            raise Unavailable("database unavailable: no connection within the timeout", RETRY_AFTER) from None
        except psycopg.OperationalError as exc:
            raise Unavailable(f"database unavailable: {first_line(exc)}", RETRY_AFTER) from None

    async def status(self) -> SchemaStatus:
        """The schema status within :data:`STATUS_TIMEOUT` seconds.  A database that stops answering
        (paused, hung, a network that drops packets) refuses nothing and runs no server-side timeout,
        and the pool's connection check has no deadline: a check still running at the deadline is
        reported as "no answer", left to finish in the background, and shared by the requests that
        come meanwhile (one check at a time, so they do not pile up on the pool)."""
        if self._check is None or self._check.done():
            self._check = asyncio.create_task(self._status(), name="schema-status")
        done, _ = await asyncio.wait({self._check}, timeout=STATUS_TIMEOUT)
        if not done:
            return SchemaStatus(False, head(), error=f"no answer within {STATUS_TIMEOUT:g}s")
        return self._check.result()

    async def _status(self) -> SchemaStatus:
        try:
            async with self.pool.connection(STATUS_TIMEOUT) as conn:
                return await schema_status(conn)
        except PoolTimeout:
            return SchemaStatus(False, head(), error=f"no connection within {STATUS_TIMEOUT:g}s")
        except psycopg.Error as exc:
            return SchemaStatus(False, head(), error=first_line(exc))


async def schema_status(conn: AsyncConn) -> SchemaStatus:
    cursor = await conn.execute(
        "SELECT coalesce(array_agg(t), '{}') FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NULL",
        (list(REQUIRED_TABLES),),
    )
    row = await cursor.fetchone()
    missing = tuple(row[0]) if row else ()
    version = 0
    if "schema_migrations" not in missing:
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cursor.fetchone()
        version = int(row[0]) if row else 0
    return SchemaStatus(True, head(), version, missing_tables=missing)
