"""A database's schema as comparable facts, read from the catalog: what a migration round trip
must restore (:func:`pytest_aegis.assert_migrations_roundtrip`).

A :func:`snapshot` maps one key per object (``table public.orders``, ``column
public.orders.total``, ``index public.orders_pkey``, ...) to its definition as PostgreSQL prints it,
so two snapshots differ exactly where a migration left, lost or changed something.  Data is not
compared: a version table's rows change with every step by design.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_aegis.postgres.handle import Connection

#: Tables migration tools keep their own bookkeeping in (ignored by default).
BOOKKEEPING_TABLES = ("alembic_version", "schema_migrations")

_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"

#: (kind, the table the object belongs to, its name, its definition) per catalog query.
_QUERIES = (
    (
        "table",
        f"""SELECT c.relname, n.nspname || '.' || c.relname,
                   CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                     WHEN 'v' THEN 'view ' || pg_get_viewdef(c.oid) WHEN 'm' THEN 'materialized view'
                     WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' ELSE c.relkind::text END
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_SCHEMAS}""",
    ),
    (
        "column",
        f"""SELECT c.relname, n.nspname || '.' || c.relname || '.' || a.attname,
                   format_type(a.atttypid, a.atttypmod)
                   || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                   || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND {_USER_SCHEMAS}""",
    ),
    (
        "index",
        f"""SELECT t.relname, n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
              FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
              JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace
             WHERE {_USER_SCHEMAS}""",
    ),
    (
        "constraint",
        f"""SELECT c.relname, n.nspname || '.' || c.relname || '.' || k.conname,
                   pg_get_constraintdef(k.oid)
              FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE {_USER_SCHEMAS}""",
    ),
    (
        "type",
        f"""SELECT '', n.nspname || '.' || t.typname,
                   CASE t.typtype WHEN 'e' THEN 'enum ' || (SELECT string_agg(e.enumlabel, ','
                     ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
                     WHEN 'd' THEN 'domain ' || format_type(t.typbasetype, t.typtypmod)
                     ELSE 'composite' END
              FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND
                    (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) AND {_USER_SCHEMAS}""",
    ),
    (
        "function",
        f"""SELECT '', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid)
                   || ')', md5(pg_get_functiondef(p.oid))
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prokind IN ('f', 'p') AND {_USER_SCHEMAS}""",
    ),
    (
        "trigger",
        f"""SELECT c.relname, n.nspname || '.' || c.relname || '.' || g.tgname, pg_get_triggerdef(g.oid)
              FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT g.tgisinternal AND {_USER_SCHEMAS}""",
    ),
    ("schema", f"SELECT '', n.nspname, 'schema' FROM pg_namespace n WHERE {_USER_SCHEMAS}"),
    ("extension", "SELECT '', extname, extversion FROM pg_extension"),
)


def snapshot(conn: Connection, ignore: Iterable[str] = BOOKKEEPING_TABLES) -> dict[str, str]:
    """The schema of ``conn``'s database: ``{"<kind> <name>": definition}``, leaving out the
    tables named in ``ignore`` and everything on them."""
    skipped = set(ignore)
    facts: dict[str, str] = {}
    for kind, query in _QUERIES:
        for table, name, definition in conn.execute(query).fetchall():
            if table in skipped:
                continue
            facts[f"{kind} {name}"] = str(definition)
    return facts


@dataclass(frozen=True)
class SchemaDiff:
    """How ``after`` differs from ``before``."""

    left_behind: tuple[str, ...]
    missing: tuple[str, ...]
    changed: tuple[tuple[str, str, str], ...]  # (object, before, after)

    def __bool__(self) -> bool:
        return bool(self.left_behind or self.missing or self.changed)

    def describe(self) -> str:
        lines = [f"  left behind: {name}" for name in self.left_behind]
        lines += [f"  missing: {name}" for name in self.missing]
        lines += [f"  changed: {name}: {old!r} -> {new!r}" for name, old, new in self.changed]
        return "\n".join(lines)


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> SchemaDiff:
    return SchemaDiff(
        left_behind=tuple(sorted(set(after) - set(before))),
        missing=tuple(sorted(set(before) - set(after))),
        changed=tuple(
            (name, before[name], after[name])
            for name in sorted(set(before) & set(after))
            if before[name] != after[name]
        ),
    )
