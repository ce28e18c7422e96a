"""Who closes the clients the harness hands out: a NATS client or a PostgreSQL connection a test
got from ``connect()`` and left open is closed when the test's call ends (warnings are errors in
the inner session, so a leaked socket would fail it); one the test closed is left alone."""

from __future__ import annotations

from typing import Any

from tests.plugin.integration.support import run_inner

LEFT_OPEN = """
import pytest

kept = {}


@pytest.mark.asyncio
async def test_leaves_a_nats_client_open(nats_server):
    kept["nats"] = await nats_server.connect()
    kept["closed_by_the_test"] = await nats_server.connect()
    await kept["closed_by_the_test"].close()


def test_leaves_a_database_connection_open(postgres_db):
    kept["sql"] = postgres_db.connect()


def test_the_harness_closed_what_was_left_open():
    assert kept["nats"].is_closed and kept["closed_by_the_test"].is_closed
    assert kept["sql"].closed
"""


def test_clients_left_open_by_a_test_are_closed_when_its_call_ends(inner: Any) -> None:
    inner.makepyfile(test_left_open=LEFT_OPEN)
    result = run_inner(inner, "-p", "no:randomly", "-W", "error")
    result.assert_outcomes(passed=3)
