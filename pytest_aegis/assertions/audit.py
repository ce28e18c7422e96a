"""Assertions on events persisted in PostgreSQL: one event stored, or a whole set stored exactly once.

Both poll the table until the condition holds or ``within`` seconds pass, then fail with the counts,
the first missing and duplicated ids, and near-misses (ids stored but not expected, ids that differ
from a missing one only in case or surrounding blanks) so a wrong id format is told from a loss.
The pure part (:func:`describe_events`) builds the verdict from counts and is unit-tested.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_aegis.waiting import Poll

if TYPE_CHECKING:  # psycopg is the postgres extra: imported when an assertion runs
    import psycopg
    from psycopg import sql

SHOW = 10
DEFAULT_TABLE = "audit_events"
DEFAULT_COLUMN = "event_id"


@dataclass(frozen=True)
class EventCounts:
    """What the table holds for the expected ids: ``counts[id]`` rows per expected id that is present;
    ``total_rows`` in the table; ``unexpected`` some stored ids that were not expected."""

    counts: Mapping[str, int]
    total_rows: int
    unexpected: tuple[str, ...] = ()


def _normal(event_id: str) -> str:
    return event_id.strip().lower()


def describe_events(
    expected: Collection[str],
    found: EventCounts,
    *,
    table: str,
    elapsed: float,
    show: int = SHOW,
    strict: bool = False,
) -> str | None:
    """``None`` when every expected id is stored exactly once (and, ``strict``, nothing else is
    stored); otherwise the failure message."""
    wanted = list(dict.fromkeys(expected))
    missing = [event_id for event_id in wanted if found.counts.get(event_id, 0) == 0]
    duplicated = {event_id: n for event_id in wanted if (n := found.counts.get(event_id, 0)) > 1}
    extra = found.total_rows - sum(found.counts.values()) if strict else 0
    if not missing and not duplicated and extra <= 0:
        return None
    once = len(wanted) - len(missing) - len(duplicated)
    lines = [
        f"{table}: expected {len(wanted)} distinct event id(s) stored exactly once"
        f"{' and nothing else' if strict else ''}, after {elapsed:.2f}s: "
        f"{once} stored once, {len(missing)} missing, {len(duplicated)} duplicated"
        f"{f', {extra} unexpected row(s)' if strict else ''} ({found.total_rows} row(s) in the table)"
    ]
    if missing:
        lines.append(f"missing (first {min(show, len(missing))}): {_first(missing, show)}")
    if duplicated:
        shown = {event_id: duplicated[event_id] for event_id in list(duplicated)[:show]}
        lines.append(f"duplicated, id: rows (first {len(shown)}): {shown}")
    near = near_misses(missing, found.unexpected, show=show)
    if near:
        lines.append(f"near misses (stored id ~ missing id): {near}")
    if found.unexpected:
        lines.append(
            f"stored but not expected (first {min(show, len(found.unexpected))}): "
            f"{_first(found.unexpected, show)}"
        )
    return "\n".join(lines)


def near_misses(missing: Iterable[str], stored: Iterable[str], *, show: int = SHOW) -> dict[str, str]:
    """Stored ids equal to a missing one up to case and surrounding blanks: ``{stored: missing}``."""
    wanted = {_normal(event_id): event_id for event_id in missing}
    found: dict[str, str] = {}
    for event_id in stored:
        twin = wanted.get(_normal(event_id))
        if twin is not None and twin != event_id:
            found[event_id] = twin
            if len(found) >= show:
                break
    return found


def _first(items: Iterable[str], show: int) -> list[str]:
    return list(items)[:show]


def _table(name: str) -> sql.Composable:
    from psycopg import sql

    return sql.Identifier(*name.split("."))


async def count_events(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    expected: Collection[str],
    *,
    table: str = DEFAULT_TABLE,
    column: str = DEFAULT_COLUMN,
    show: int = SHOW,
) -> EventCounts:
    """Rows per expected id, the table's row count and a few stored ids that were not expected."""
    from psycopg import sql

    # %b: the id list goes in binary (psycopg quotes a text array element by element, ~30x slower).
    ids = list(expected)
    params = {"table": _table(table), "column": sql.Identifier(column)}
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {column}::text, count(*) FROM {table} WHERE {column}::text = ANY(%b) GROUP BY 1"
        ).format(**params),
        (ids,),
    )
    counts = {str(row[0]): int(row[1]) for row in await cursor.fetchall()}  # type: ignore[call-overload]
    cursor = await conn.execute(sql.SQL("SELECT count(*) FROM {table}").format(**params))
    row = await cursor.fetchone()
    total = int(row[0]) if row else 0  # type: ignore[call-overload]
    unexpected: tuple[str, ...] = ()
    if total > sum(counts.values()):
        cursor = await conn.execute(
            sql.SQL(
                "SELECT DISTINCT {column}::text FROM {table} WHERE NOT ({column}::text = ANY(%b)) LIMIT %s"
            ).format(**params),
            (ids, max(show, 100)),
        )
        unexpected = tuple(str(row[0]) for row in await cursor.fetchall())
    return EventCounts(counts, total, unexpected)


async def assert_no_event_lost(
    dsn: str,
    expected_ids: Collection[str],
    *,
    within: float = 10.0,
    table: str = DEFAULT_TABLE,
    column: str = DEFAULT_COLUMN,
    strict: bool = False,
) -> None:
    """Assert that every id of ``expected_ids`` is stored in ``table`` exactly once within ``within``
    seconds; ``strict``: and that the table holds no other row (a leak from another test, a
    stray event), listing the unexpected ids.  Fails at once on a duplicate or, ``strict``, an
    unexpected row (neither goes away); otherwise polls."""
    from pytest_aegis.postgres import require_psycopg
    from pytest_aegis.postgres.handle import CONNECT_TIMEOUT

    require_psycopg()
    import psycopg

    poll = Poll(within, interval=0.01, max_interval=0.25)
    message: str | None = "not checked yet"
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT
    ) as conn:
        async for _ in poll.aiter():
            try:
                found = await count_events(conn, expected_ids, table=table, column=column)
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
                raise AssertionError(
                    f"events: no {table}.{column} to count them in ({exc.diag.message_primary}): has the "
                    "service migrated this database? pass table=... and column=... for another layout"
                ) from None
            message = describe_events(expected_ids, found, table=table, elapsed=poll.elapsed, strict=strict)
            if message is None or any(n > 1 for n in found.counts.values()) or (strict and found.unexpected):
                break
    if message is not None:
        raise AssertionError(message)


async def assert_event_persisted(
    dsn: str,
    event_id: str,
    *,
    within: float = 5.0,
    table: str = DEFAULT_TABLE,
    column: str = DEFAULT_COLUMN,
) -> None:
    """Assert that the event ``event_id`` is stored in ``table`` (exactly once) within ``within`` seconds."""
    await assert_no_event_lost(dsn, [event_id], within=within, table=table, column=column)
