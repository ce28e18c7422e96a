"""The PostgreSQL fixtures.  Thin: the logic lives in :mod:`pytest_aegis.postgres`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from pytest_aegis.harness import get_harness
from pytest_aegis.postgres import PostgresDatabase, PostgresHandle, PostgresPool
from pytest_aegis.postgres.databases import drop_database
from pytest_aegis.reporting import mark_used


def _pool(config: pytest.Config) -> PostgresPool:
    return get_harness(config).postgres


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> PostgresHandle:
    """A PostgreSQL server shared by the session: TCP on 127.0.0.1, password auth
    (``dsn``, ``host``, ``port``, ``user``, ``password``)."""
    return _pool(pytestconfig).get()


@pytest.fixture
def postgres_server_factory(request: pytest.FixtureRequest) -> Callable[[], PostgresHandle]:
    """Start unshared servers (stopped at session end), for tests that stop or kill theirs."""
    pool = _pool(request.config)

    def start() -> PostgresHandle:
        server = pool.start()
        mark_used(request.node, server)
        return server

    return start


@pytest.fixture
def postgres_db(
    request: pytest.FixtureRequest, postgres_server: PostgresHandle
) -> Iterator[PostgresDatabase]:
    """A fresh database for this test (``dsn``, ``name``, ``connect()``), copied from the
    session's template database (which has the ``aegis_pg_migrations`` applied); dropped after."""
    mark_used(request.node, postgres_server)
    database = _pool(request.config).new_database(postgres_server)
    yield database
    drop_database(database)


@pytest.fixture
def postgres_tx(
    request: pytest.FixtureRequest, postgres_server: PostgresHandle
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Rollback mode: an open psycopg connection inside a transaction on a migrated database
    shared by the session, rolled back after the test.  Cheaper than ``postgres_db``;
    the test must not commit."""
    mark_used(request.node, postgres_server)
    database = _pool(request.config).tx_database(postgres_server)
    conn = database.connect()
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()
