"""PostgreSQL fixtures against a real server (local backend): no mocks."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import psycopg
import pytest
from support import gone, kill_9_hanging_session, run_inner, session_env, spawn_pytest

from pytest_aegis.harness import get_harness
from pytest_aegis.waiting import wait_until

SEEN_DATABASES: list[str] = []


def test_server_answers_select_version_over_tcp_with_its_password(postgres_server):
    with psycopg.connect(
        host=postgres_server.host,
        port=postgres_server.port,
        user=postgres_server.user,
        password=postgres_server.password,
        dbname="postgres",
    ) as conn:
        (version,) = conn.execute("SELECT version()").fetchone()
        (address,) = conn.execute("SELECT host(inet_server_addr())").fetchone()
    assert f"PostgreSQL {postgres_server.version}" in version
    assert address == "127.0.0.1", "the connection should be TCP, not the unix socket"
    with psycopg.connect(postgres_server.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_wrong_password_is_rejected(postgres_server):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password=postgres_server.password + "-wrong",
            dbname="postgres",
            connect_timeout=10,
        )


@pytest.mark.aegis_backends("local", reason="a local postmaster's uid and data dir; a container has neither")
def test_the_server_does_not_run_as_root_and_keeps_its_files_private(postgres_server):
    uid = os.stat(f"/proc/{postgres_server.pid}").st_uid
    assert uid != 0
    assert oct(postgres_server.data_dir.stat().st_mode & 0o777) == "0o700"
    assert postgres_server.data_dir.stat().st_uid == uid


@pytest.mark.parametrize("turn", [1, 2])
def test_postgres_db_is_a_fresh_database_each_test(postgres_db, turn):
    assert postgres_db.name.startswith("test_") and postgres_db.name not in SEEN_DATABASES
    SEEN_DATABASES.append(postgres_db.name)
    with postgres_db.connect(autocommit=True) as conn:
        (exists,) = conn.execute("SELECT to_regclass('public.leftover') IS NOT NULL").fetchone()
        assert not exists, "a table created by another test is visible"
        conn.execute("CREATE TABLE leftover (turn int)")


def test_databases_are_isolated_and_dropped(request, postgres_server, postgres_db):
    pool = get_harness(request.config).postgres
    other = pool.new_database(postgres_server)
    with postgres_db.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE mine (x int)")
    with other.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.mine')").fetchone() == (None,)
    from pytest_aegis.postgres.databases import drop_database

    drop_database(other)
    with psycopg.connect(postgres_server.dsn) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert other.name not in names and postgres_db.name in names


def test_postgres_tx_is_inside_a_transaction_nobody_else_sees(postgres_server, postgres_tx):
    postgres_tx.execute("CREATE TABLE tx_only (x int)")
    assert postgres_tx.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    dbname = postgres_tx.info.dbname
    with psycopg.connect(postgres_server.dsn_for(dbname)) as conn:
        assert conn.execute("SELECT to_regclass('public.tx_only')").fetchone() == (None,)


@pytest.mark.aegis_backends("local", reason="the initdb cache is the local backend's")
def test_a_second_server_starts_warm_from_the_cached_cluster(postgres_server, postgres_server_factory):
    cache = postgres_server.cache_dir
    assert (cache / "data" / "PG_VERSION").is_file()
    second = postgres_server_factory()
    assert second.cache_hit, "the second start of the session must copy the cached cluster, not initdb"
    assert second.cache_dir == cache
    assert second.data_dir != postgres_server.data_dir and second.port != postgres_server.port
    with psycopg.connect(second.dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    second.stop()
    assert not second.is_running


# -- inner sessions --------------------------------------------------------


def test_migrations_reach_postgres_db_and_postgres_tx_and_tx_rolls_back(inner):
    migrations = inner.mkdir("migrations")
    (migrations / "001_accounts.sql").write_text("CREATE TABLE accounts (id int PRIMARY KEY, name text);\n")
    (migrations / "002_seed.sql").write_text(
        "INSERT INTO accounts VALUES (1, 'alice');\nINSERT INTO accounts VALUES (2, 'bob');\n"
    )
    (migrations / "010_index.sql").write_text("CREATE INDEX accounts_name ON accounts (name);\n")
    inner.makepyfile("""
        def test_db_has_migrations(postgres_db):
            with postgres_db.connect() as conn:
                rows = conn.execute("SELECT name FROM accounts ORDER BY id").fetchall()
                assert rows == [("alice",), ("bob",)]
                assert conn.execute("SELECT to_regclass('accounts_name')").fetchone() != (None,)

        def test_tx_writes(postgres_tx):
            postgres_tx.execute("INSERT INTO accounts VALUES (3, 'carol')")
            assert postgres_tx.execute("SELECT count(*) FROM accounts").fetchone() == (3,)

        def test_tx_was_rolled_back(postgres_tx):
            assert postgres_tx.execute("SELECT count(*) FROM accounts").fetchone() == (2,)
    """)
    result = run_inner(inner, "--aegis-pg-migrations", "migrations", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_postgres_tx_reuses_its_connection_but_not_its_state(inner):
    inner.makepyfile("""
        SEEN = []

        def test_a_dirties_the_session(postgres_tx):
            SEEN.append(postgres_tx.info.backend_pid)
            postgres_tx.execute("SET application_name = 'dirty'")
            postgres_tx.execute("CREATE TEMP TABLE scratch (id int)")
            postgres_tx.execute("PREPARE p AS SELECT 1")

        def test_b_sees_a_clean_session_on_the_same_connection(postgres_tx):
            assert postgres_tx.info.backend_pid == SEEN[0]
            assert postgres_tx.execute("SHOW application_name").fetchone() != ("dirty",)
            assert postgres_tx.execute("SELECT to_regclass('scratch')").fetchone() == (None,)
            assert postgres_tx.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)

        def test_c_closes_the_connection(postgres_tx):
            postgres_tx.close()

        def test_d_gets_a_new_one(postgres_tx):
            assert postgres_tx.info.backend_pid != SEEN[0]
            assert postgres_tx.execute("SELECT 1").fetchone() == (1,)
    """)
    result = run_inner(inner, "-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_up_files_are_applied_and_down_files_ignored(inner):
    migrations = inner.mkdir("migrations")
    (migrations / "001_accounts.up.sql").write_text("CREATE TABLE accounts (id int PRIMARY KEY);\n")
    (migrations / "001_accounts.down.sql").write_text("DROP TABLE accounts;\n")
    (migrations / "002_audit.up.sql").write_text("CREATE TABLE audit (id int);\n")
    (migrations / "002_audit.down.sql").write_text("DROP TABLE audit;\n")
    inner.makepyfile("""
        def test_both_up_migrations_applied(postgres_db):
            with postgres_db.connect() as conn:
                found = conn.execute(
                    "SELECT count(*) FROM pg_tables WHERE tablename IN ('accounts', 'audit')"
                ).fetchone()
                assert found == (2,)
    """)
    result = run_inner(inner, "--aegis-pg-migrations", "migrations")
    result.assert_outcomes(passed=1)


def test_migrations_from_a_function_get_the_template_dsn(inner):
    inner.makepyfile(
        my_migrations="""
        import psycopg

        CALLS = []

        def upgrade(dsn):
            assert "/aegis_template" in dsn, dsn
            with psycopg.connect(dsn) as conn:
                conn.execute("CREATE TABLE made_by_function (id int)")
        """,
        test_fn="""
        def test_one(postgres_db):
            with postgres_db.connect() as conn:
                assert conn.execute("SELECT to_regclass('made_by_function')").fetchone() != (None,)

        def test_two(postgres_db):
            with postgres_db.connect() as conn:
                assert conn.execute("SELECT count(*) FROM made_by_function").fetchone() == (0,)
        """,
    )
    result = run_inner(inner, "--aegis-pg-migrations", "my_migrations:upgrade")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no_such_module_xyz:upgrade", "*aegis_pg_migrations: cannot import 'no_such_module_xyz'*"),
        ("json:no_such_function", "*aegis_pg_migrations: json has no function 'no_such_function'*"),
        ("missing_dir", "*missing_dir is not a directory (nor 'module:function')*"),
    ],
)
def test_bad_migration_sources_are_named(inner, value, expected):
    inner.makepyfile("""
        def test_x(postgres_db):
            pass
    """)
    result = run_inner(inner, "--aegis-pg-migrations", value)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


def test_a_failing_migration_names_its_file(inner):
    migrations = inner.mkdir("migrations")
    (migrations / "001_broken.sql").write_text("CREATE TABLE oops (;\n")
    inner.makepyfile("""
        def test_x(postgres_db):
            pass
    """)
    result = run_inner(inner, "--aegis-pg-migrations", "migrations")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*migration*001_broken.sql failed*syntax error*"])


HANGING_TEST = textwrap.dedent("""
    import json, os, pathlib, threading

    def children(pid):
        found = []
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return found

    def test_hangs(postgres_server):
        info = {"pytest": os.getpid(), "postmaster": postgres_server.pid,
                "children": children(postgres_server.pid), "dir": str(postgres_server.directory)}
        pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps(info))
        threading.Event().wait()  # until killed
""")


def test_kill_9_of_pytest_leaves_no_postmaster_and_the_next_session_reclaims_its_dir(tmp_path):
    pids_file = tmp_path / "pids.json"
    (tmp_path / "test_hang.py").write_text(HANGING_TEST)
    (tmp_path / "test_next.py").write_text("def test_next(postgres_server):\n    pass\n")
    env = session_env(tmp_path / "state", pids_file)

    info = kill_9_hanging_session("test_hang.py", env, tmp_path, pids_file)
    assert info["children"], "a running postmaster has helper processes (checkpointer, walwriter, ...)"

    wait_until(
        lambda: gone(info["postmaster"]),
        "the killed session's postmaster to die",
        timeout=10,
        hint="PR_SET_PDEATHSIG should kill it with pytest",
    )
    wait_until(
        lambda: all(gone(pid) for pid in info["children"]),
        "the postmaster's children to exit",
        timeout=10,
        hint="postgres processes exit when they notice the postmaster died",
    )
    server_dir = Path(info["dir"])
    assert server_dir.exists(), "the dead session's data dir stays until the next session sweeps it"

    follower = spawn_pytest(["test_next.py"], env, tmp_path)
    assert follower.wait(timeout=120) == 0
    assert not server_dir.exists(), "the next session should have removed the dead one's PostgreSQL dir"


def test_a_taken_port_is_retried_with_another(request, monkeypatch):
    import socket

    from pytest_aegis import ports

    real_lease_port = ports.lease_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken])
        monkeypatch.setattr(ports, "lease_port", lambda: next(offered, None) or real_lease_port())
        server = get_harness(request.config).postgres.start(name="retry")
        try:
            assert server.port != taken
            assert "could not bind" in server.logs() and server.is_running
        finally:
            server.stop()
