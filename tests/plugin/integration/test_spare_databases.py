"""postgres_db hands out databases cloned ahead of need (``--aegis-pg-spare-databases``), drops
what tests gave back in the background, and leaves nothing behind: at session end, and after a
``kill -9`` on a server shared between sessions (the next session sweeps it)."""

from __future__ import annotations

import textwrap
from typing import Any

import psycopg
import pytest
from support import kill_9_hanging_session, run_inner, session_env, spawn_pytest

from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.postgres import PostgresHandle
from pytest_aegis.postgres.databases import OWNER_MARK, DatabaseAdmin

COMMON = textwrap.dedent("""
    import psycopg
    from pytest_aegis.waiting import wait_until

    def copies(server):
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test%%'").fetchall()
        return {name for (name,) in rows}
""")

# Run in file order (-p no:randomly): the first test sees the spares, the second gets one.
HANDED_OUT = COMMON + textwrap.dedent("""
    SEEN = {}

    def test_first(postgres_server, postgres_db):
        SEEN["first"] = postgres_db.name
        others = lambda: copies(postgres_server) - {postgres_db.name}
        SEEN["before"] = wait_until(
            others, "the spares to be cloned", timeout=20, ok=lambda names: len(names) >= SPARES
        ) if SPARES else copies(postgres_server)

    def test_second(postgres_server, postgres_db):
        assert (postgres_db.name in SEEN["before"]) is bool(SPARES), (postgres_db.name, SEEN)
        wait_until(lambda: SEEN["first"] not in copies(postgres_server), "the first test's database dropped",
                   timeout=20)
""")


@pytest.mark.parametrize("spares", [2, 0])
def test_postgres_db_is_a_database_cloned_before_the_test_asked(inner: Any, spares: int) -> None:
    inner.makepyfile(test_inner=HANDED_OUT.replace("SPARES", str(spares)))
    result = run_inner(inner, "-p", "no:randomly", f"--aegis-pg-spare-databases={spares}")
    result.assert_outcomes(passed=2)


def test_a_bad_count_is_a_usage_error_naming_the_setting(inner: Any) -> None:
    inner.makepyfile("def test_x():\n    pass\n")
    result = run_inner(inner, "--aegis-pg-spare-databases=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--aegis-pg-spare-databases*invalid value 'many'; expected a whole number from 0 to 64*"]
    )


VICTIM = COMMON + textwrap.dedent("""
    import json, os, pathlib, threading

    def test_hangs(postgres_server, postgres_db):
        wait_until(lambda: len(copies(postgres_server)) >= 3, "the spares to be cloned", timeout=20)
        pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps({"db": postgres_db.name}))
        threading.Event().wait()  # until killed
""")


def marked(server: PostgresHandle) -> dict[str, str]:
    """The databases on ``server`` with a pytest-aegis owner mark, and their owner tokens."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (OWNER_MARK + "%",),
        ).fetchall()
    return {str(name): str(mark).removeprefix(OWNER_MARK) for name, mark in rows}


def test_after_kill_9_the_next_session_drops_what_the_dead_one_left_on_a_shared_server(
    tmp_path: Any, postgres_server_factory: Any, nats_server_factory: Any
) -> None:
    server: PostgresHandle = postgres_server_factory()
    nats: NatsServer = nats_server_factory(auth="userpass", tls=True)  # the backend needs one
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE users_own")  # not ours: never touched
    with DatabaseAdmin(server) as alive:  # a live session's database: its owner still holds the lock
        live = alive.create_template(None, "aegis_template_alive")
        env = {
            **session_env(tmp_path / "state", tmp_path / "pids.json"),
            "AEGIS_BACKEND": "external",
            "AEGIS_EXTERNAL_PG_DSN": server.dsn,
            "AEGIS_EXTERNAL_NATS_URL": nats.url,
            "AEGIS_EXTERNAL_NATS_USER": nats.credentials["user"],
            "AEGIS_EXTERNAL_NATS_PASSWORD": nats.credentials["password"],
            "AEGIS_EXTERNAL_NATS_CA": str(nats.ca_file),
        }
        (tmp_path / "test_hang.py").write_text(VICTIM)
        (tmp_path / "test_next.py").write_text("def test_next(postgres_db):\n    pass\n")

        info = kill_9_hanging_session("test_hang.py", env, tmp_path, tmp_path / "pids.json")
        left = marked(server)
        dead = {name for name, token in left.items() if name != live.name}
        assert info["db"] in dead and len(dead) >= 4, f"the template, the test's database, 2 spares: {left}"

        follower = spawn_pytest(["test_next.py"], env, tmp_path)
        assert follower.wait(timeout=120) == 0
        after = marked(server)
        assert set(after) == {live.name}, f"left by the dead session or the follower: {after}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        names = {name for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert "users_own" in names
