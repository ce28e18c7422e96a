"""assert_event_persisted / assert_no_event_lost against a real table: they pass on a clean set and
fail, with counts and ids, when an event is missing or stored twice."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from pytest_aegis import assert_event_persisted, assert_no_event_lost
from pytest_aegis.assertions import audit

pytestmark = pytest.mark.asyncio


@pytest.fixture
def events_table(postgres_db):
    """A table without a unique constraint, so a duplicate can exist."""
    with postgres_db.connect() as conn:
        conn.execute("CREATE TABLE received (event_id text NOT NULL)")
        conn.execute("INSERT INTO received VALUES ('a'), ('b'), ('c'), ('c'), ('Stray-1')")
        conn.commit()
    return postgres_db


@pytest.fixture
def table_reads(monkeypatch):
    """The helpers' reads of the table from now on (each poll is one), as a list to count."""
    reads = []
    count_events = audit.count_events

    async def counted(*args, **kwargs):
        reads.append(args)
        return await count_events(*args, **kwargs)

    monkeypatch.setattr(audit, "count_events", counted)
    return reads


async def test_pass_when_every_id_is_stored_once(events_table):
    await assert_event_persisted(events_table.dsn, "a", table="received", within=0.1)
    await assert_no_event_lost(events_table.dsn, ["a", "b"], table="received", within=0.1)


async def test_fails_on_a_missing_event_after_within(events_table):
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        await assert_no_event_lost(
            events_table.dsn, ["a", "b", "stray-1", "zz"], table="received", within=0.3
        )
    assert time.monotonic() - started >= 0.3
    message = str(failure.value)
    assert "expected 4 distinct event id(s) stored exactly once" in message
    assert "2 stored once, 2 missing, 0 duplicated (5 row(s) in the table)" in message
    assert "missing (first 2): ['stray-1', 'zz']" in message
    assert "near misses (stored id ~ missing id): {'Stray-1': 'stray-1'}" in message

    with pytest.raises(AssertionError, match=r"(?s)1 missing.*missing \(first 1\): \['nope'\]"):
        await assert_event_persisted(events_table.dsn, "nope", table="received", within=0.05)


async def test_fails_at_once_on_a_duplicate(events_table, table_reads):
    with pytest.raises(AssertionError) as failure:
        await assert_no_event_lost(events_table.dsn, ["a", "c"], table="received", within=5.0)
    # A second copy never goes away: no point waiting.  The first read of the table is the last
    # (a helper that polled on would read it again until ``within`` passed).
    assert len(table_reads) == 1, f"{len(table_reads)} reads of the table"
    assert "1 stored once, 0 missing, 1 duplicated" in str(failure.value)
    assert "duplicated, id: rows (first 1): {'c': 2}" in str(failure.value)
    with pytest.raises(AssertionError, match=r"\{'c': 2\}"):
        await assert_event_persisted(events_table.dsn, "c", table="received")


async def test_waits_for_a_late_event(events_table):
    async def late_insert() -> None:
        await asyncio.sleep(0.2)
        async with await psycopg.AsyncConnection.connect(events_table.dsn, autocommit=True) as conn:
            await conn.execute("INSERT INTO received VALUES ('late')")

    task = asyncio.create_task(late_insert())
    await assert_event_persisted(events_table.dsn, "late", table="received", within=5.0)
    await task


async def test_strict_fails_at_once_on_rows_nobody_expected_listing_them(events_table, table_reads):
    await assert_no_event_lost(events_table.dsn, ["a", "b"], table="received", within=0.1)  # not strict
    table_reads.clear()
    # A stray row never goes away: strict fails on its first read of the table, not after ``within``.
    with pytest.raises(AssertionError) as failure:
        await assert_no_event_lost(events_table.dsn, ["a", "b"], table="received", within=5.0, strict=True)
    assert len(table_reads) == 1, f"{len(table_reads)} reads of the table"
    message = str(failure.value)
    assert "2 stored once, 0 missing, 0 duplicated, 3 unexpected row(s) (5 row(s) in the table)" in message
    assert "stored but not expected" in message and "'Stray-1'" in message and "'c'" in message


async def test_a_missing_table_or_column_fails_naming_it(events_table):
    with pytest.raises(
        AssertionError, match=r'events: no nowhere\.event_id .*relation "nowhere" does not exist'
    ):
        await assert_no_event_lost(events_table.dsn, ["a"], table="nowhere", within=0.1)
    with pytest.raises(AssertionError, match=r'no received\.id .*column "id" does not exist.*pass table='):
        await assert_event_persisted(events_table.dsn, "a", table="received", column="id", within=0.1)
