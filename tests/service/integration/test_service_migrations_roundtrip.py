"""The reference service's migrations survive a round trip: each step down restores the schema
its step up found, and up again gives the same head (pytest_aegis.assert_migrations_roundtrip)."""

from __future__ import annotations

from aegis_service.migrations import head
from pytest_aegis import assert_migrations_roundtrip
from pytest_aegis.postgres import PostgresHandle


def test_the_service_migrations_go_up_down_and_up_again_to_the_same_schema(
    postgres_server: PostgresHandle,
) -> None:
    labels = assert_migrations_roundtrip(postgres_server, "aegis_service.migrations:upgrade")
    assert len(labels) == head() >= 3
