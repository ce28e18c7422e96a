"""The PostgreSQL fixtures.  Thin: the logic lives in :mod:`pytest_aegis.postgres`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from pytest_aegis.harness import get_harness
from pytest_aegis.postgres import PostgresDatabase, PostgresHandle, PostgresPool
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
    pool = _pool(request.config)
    database = pool.new_database(postgres_server)
    yield database
    pool.drop_database(database)


@pytest.fixture
def postgres_tx(
    request: pytest.FixtureRequest, postgres_server: PostgresHandle
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Rollback mode: an open psycopg connection inside a transaction on a migrated database
    shared by the session, rolled back after the test (and its session state reset with
    ``DISCARD ALL``).  The connection is reused across tests, so a test costs a rollback,
    not a login.  The test must not commit; closing the connection is allowed."""
    mark_used(request.node, postgres_server)
    pool = _pool(request.config)
    conn = pool.tx_connection(postgres_server)
    try:
        yield conn
    finally:
        pool.reset_tx_connection(postgres_server)
