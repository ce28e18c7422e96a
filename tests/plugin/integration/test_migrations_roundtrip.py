"""assert_migrations_roundtrip and Alembic in aegis_pg_migrations, against a real PostgreSQL: every
form (SQL files, module:function, Alembic with a stock env.py), a down step that leaves a table
behind is caught and named."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import run_inner

from pytest_aegis import MigrationError, assert_migrations_roundtrip
from pytest_aegis.postgres import PostgresHandle

UP_1 = "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(10, 2) NOT NULL DEFAULT 0);"
DOWN_1 = "DROP TABLE orders;"
UP_2 = """
CREATE TYPE state AS ENUM ('new', 'paid');
CREATE TABLE lines (id int PRIMARY KEY, order_id bigint REFERENCES orders (id), state state);
CREATE INDEX lines_order ON lines (order_id);
"""
DOWN_2 = "DROP TABLE lines; DROP TYPE state;"
DOWN_2_LEAVES_A_TABLE = "DROP TYPE state CASCADE;"  # the column goes; the table stays


def write_sql(directory: Path, down_2: str = DOWN_2) -> Path:
    directory.mkdir()
    for name, text in {
        "001_orders.sql": UP_1,
        "001_orders.down.sql": DOWN_1,
        "002_lines.up.sql": UP_2,
        "002_lines.down.sql": down_2,
    }.items():
        (directory / name).write_text(text)
    return directory


def test_sql_files_that_undo_themselves_pass(tmp_path: Path, postgres_server: PostgresHandle) -> None:
    labels = assert_migrations_roundtrip(postgres_server, str(write_sql(tmp_path / "m")))
    assert labels == ["001_orders.sql", "002_lines.up.sql"]


def test_a_down_step_that_leaves_a_table_behind_fails_naming_it(
    tmp_path: Path, postgres_server: PostgresHandle
) -> None:
    directory = write_sql(tmp_path / "m", down_2=DOWN_2_LEAVES_A_TABLE)
    with pytest.raises(AssertionError, match=r"down 002_lines\.up\.sql did not restore") as caught:
        assert_migrations_roundtrip(postgres_server.dsn, str(directory))
    message = str(caught.value)
    assert "left behind: table public.lines" in message
    assert "left behind: index public.lines_order" in message
    listed = [
        line for line in message.splitlines() if line.startswith(("  left behind", "  missing", "  changed"))
    ]
    assert not [line for line in listed if "public.orders" in line], "orders was restored by its own step"


def test_a_missing_down_file_is_named(tmp_path: Path, postgres_server: PostgresHandle) -> None:
    directory = write_sql(tmp_path / "m")
    (directory / "002_lines.down.sql").unlink()
    with pytest.raises(MigrationError, match=r"no down migration 002_lines\.down\.sql"):
        assert_migrations_roundtrip(postgres_server, str(directory))


FUNCTIONS = """
import psycopg

STEPS = [({up1!r}, {down1!r}), ({up2!r}, {down2!r})]


def _version(conn):
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int)")
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def head():
    return len(STEPS)


def upgrade(dsn, target=None):
    with psycopg.connect(dsn) as conn:
        for version in range(_version(conn) + 1, (target or head()) + 1):
            conn.execute(STEPS[version - 1][0])
            conn.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))


def downgrade(dsn, steps=1):
    with psycopg.connect(dsn) as conn:
        for _ in range(steps):
            version = _version(conn)
            conn.execute(STEPS[version - 1][1])
            conn.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))
"""


@pytest.mark.parametrize(("down_2", "passes"), [(DOWN_2, True), (DOWN_2_LEAVES_A_TABLE, False)])
def test_module_function_with_downgrade_and_head(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresHandle,
    down_2: str,
    passes: bool,
) -> None:
    module = f"roundtrip_fn_{'ok' if passes else 'broken'}"
    (tmp_path / f"{module}.py").write_text(FUNCTIONS.format(up1=UP_1, down1=DOWN_1, up2=UP_2, down2=down_2))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    if passes:
        assert len(assert_migrations_roundtrip(postgres_server, f"{module}:upgrade")) == 2
    else:
        with pytest.raises(
            AssertionError, match=r"down .*version 2 did not restore(.|\n)*table public\.lines"
        ):
            assert_migrations_roundtrip(postgres_server, f"{module}:upgrade")


REVISION = '''
"""{doc}"""
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


KEEP_OR_DROP = {False: "\n    op.drop_table('audit')", True: ""}


def alembic_project(root: Path, *, down_leaves_table: bool = False) -> Path:
    """A project made by ``alembic init`` (its stock env.py and alembic.ini), with two revisions."""
    from alembic import command
    from alembic.config import Config

    ini = root / "alembic.ini"
    command.init(Config(str(ini)), str(root / "migrations"))
    versions = root / "migrations" / "versions"
    revisions = [
        ("a1", None, "create accounts",
         "    op.create_table('accounts', sa.Column('id', sa.Integer, primary_key=True))",
         "    op.drop_table('accounts')"),
        ("b2", "a1", "create audit",
         "    op.create_table('audit', sa.Column('id', sa.Integer, primary_key=True),\n"
         "                    sa.Column('account_id', sa.Integer, sa.ForeignKey('accounts.id')))\n"
         "    op.create_index('audit_account', 'audit', ['account_id'])",
         "    op.drop_index('audit_account', 'audit')" + KEEP_OR_DROP[down_leaves_table]),
    ]  # fmt: skip
    for revision, down, doc, upgrade, downgrade in revisions:
        (versions / f"{revision}.py").write_text(
            REVISION.format(doc=doc, revision=revision, down=down, upgrade=upgrade, downgrade=downgrade)
        )
    return ini


def test_alembic_with_a_stock_env_py_passes(tmp_path: Path, postgres_server: PostgresHandle) -> None:
    ini = alembic_project(tmp_path)
    labels = assert_migrations_roundtrip(postgres_server, f"alembic:{ini}")
    assert labels == ["a1 (create accounts)", "b2 (create audit)"]


def test_alembic_down_that_leaves_a_table_behind_fails_naming_it(
    tmp_path: Path, postgres_server: PostgresHandle
) -> None:
    alembic_project(tmp_path, down_leaves_table=True)
    with pytest.raises(AssertionError, match=r"down b2 \(create audit\) did not restore") as caught:
        assert_migrations_roundtrip(postgres_server, "alembic:alembic.ini", rootdir=tmp_path)
    assert "left behind: table public.audit" in str(caught.value)
    assert "left behind: constraint public.audit.audit_account_id_fkey" in str(caught.value)


INNER = textwrap.dedent("""
    def test_template_is_at_alembic_head(postgres_db):
        with postgres_db.connect() as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("b2",)]
            assert conn.execute("SELECT to_regclass('public.audit') IS NOT NULL").fetchone() == (True,)
""")


def test_aegis_pg_migrations_alembic_upgrades_the_template(inner: Any) -> None:
    alembic_project(Path(inner.path))
    inner.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\naegis_pg_migrations = alembic:alembic.ini\n"
    )
    inner.makepyfile(test_inner=INNER)
    result = run_inner(inner)
    result.assert_outcomes(passed=1)


def test_a_missing_alembic_config_is_a_usage_error_naming_the_setting(inner: Any) -> None:
    inner.makepyfile("def test_x():\n    pass\n")
    result = run_inner(inner, "--aegis-pg-migrations=alembic:nowhere/alembic.ini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*aegis_pg_migrations: no Alembic config at */nowhere/alembic.ini*(set by --aegis-pg-migrations)*"]
    )


def test_the_scratch_database_is_dropped(tmp_path: Path, postgres_server: PostgresHandle) -> None:
    assert_migrations_roundtrip(postgres_server, str(write_sql(tmp_path / "m")))
    with psycopg.connect(postgres_server.dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'aegis_roundtrip%'"
        ).fetchall()
    assert rows == []
