"""``assert_migrations_roundtrip``: every migration up, down and up again must leave the schema
exactly as the step before it found it (pytest-alembic's anchor tests, for every
``aegis_pg_migrations`` form)."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from pytest_aegis.postgres.handle import CONNECT_TIMEOUT, PostgresDatabase, PostgresHandle
from pytest_aegis.postgres.migrations import MigrationSource, parse_migrations
from pytest_aegis.postgres.roundtrip import DirectorySteps, FunctionSteps, Trace, run_roundtrip
from pytest_aegis.postgres.schema import BOOKKEEPING_TABLES, diff

__all__ = ["assert_migrations_roundtrip"]


def assert_migrations_roundtrip(
    dsn_or_handle: str | PostgresHandle | PostgresDatabase,
    migrations: str | MigrationSource,
    *,
    ignore: Iterable[str] = (),
    rootdir: Path | None = None,
) -> list[str]:
    """Run ``migrations`` up one step at a time, down one step at a time to base, and up again to
    head, on a scratch database made next to ``dsn_or_handle`` (a DSN, ``postgres_server`` or
    ``postgres_db``; the role must be allowed to create databases) and dropped after.

    ``migrations`` is an ``aegis_pg_migrations`` value (a directory of ``NNN_name.sql`` with
    ``NNN_name.down.sql`` partners; ``module:function`` whose module has ``downgrade(dsn,
    steps=1)`` and ``head()``; ``alembic:path/to/alembic.ini``; relative paths start at
    ``rootdir``, default the current directory) or a :class:`MigrationSource`.

    Raises :class:`AssertionError` naming the step and the objects when a step fails, a step
    down does not restore the schema the step up found (a table left behind, a column not
    restored), or the schema after up-again differs from the first head.  The version tables of
    common tools (``alembic_version``, ``schema_migrations``) and the tables in ``ignore`` are not
    compared.  Returns the steps' labels, base to head.
    """
    source = (
        migrations
        if isinstance(migrations, MigrationSource)
        else parse_migrations(migrations, rootdir or Path.cwd())
    )
    ignored = (*BOOKKEEPING_TABLES, *ignore)
    with _scratch_database(dsn_or_handle) as dsn:
        trace = _trace(source, dsn, ignored)
    _check(trace, source)
    return trace.labels


def _trace(source: MigrationSource, dsn: str, ignored: tuple[str, ...]) -> Trace:
    if source.alembic is not None:
        from pytest_aegis.postgres import alembic_runner

        return Trace.from_json(json.loads(alembic_runner.run("roundtrip", source.alembic, dsn, ignored)))
    steps = (
        DirectorySteps(source.directory)
        if source.directory is not None
        else FunctionSteps(str(source.function))
    )
    return run_roundtrip(steps, dsn, ignored)


def _check(trace: Trace, source: MigrationSource) -> None:
    """The first thing that went wrong, in the order the steps ran."""
    where = f"migration round trip of {source.describe()}"
    if not trace.labels:
        raise AssertionError(f"{where}: no migrations found")
    then = f"\n(and then: {trace.failure})" if trace.failure else ""
    for index in sorted(trace.down, reverse=True):  # the steps down, as they ran
        found = diff(trace.up[index], trace.down[index])
        if found:
            label = trace.labels[index]
            raise AssertionError(
                f"{where}: down {label} did not restore the schema before it:\n{found.describe()}{then}"
            )
    if trace.failure is not None:
        raise AssertionError(f"{where}: {trace.failure}")
    assert trace.again is not None
    found = diff(trace.up[-1], trace.again)
    if found:
        raise AssertionError(f"{where}: up again to head differs from the first head:\n{found.describe()}")


@contextlib.contextmanager
def _scratch_database(target: str | PostgresHandle | PostgresDatabase) -> Iterator[str]:
    """An empty database (from ``template0``) beside ``target``; its DSN; dropped after."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    dsn = target if isinstance(target, str) else target.dsn
    name = f"aegis_roundtrip_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        try:
            yield make_conninfo(dsn, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
