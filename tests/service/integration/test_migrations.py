"""The service's schema migrations against a real PostgreSQL: up, down one step, up again, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psycopg
import pytest

from aegis_service.migrations import (
    REQUIRED_TABLES,
    MigrationError,
    current_version,
    downgrade,
    head,
    load_migrations,
    upgrade,
)


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def applied(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


@pytest.fixture
def empty_db(postgres_db):
    """A database with every migration reverted (whatever the template had applied)."""
    downgrade(postgres_db.dsn, steps=max(1, head()))
    assert current_version(postgres_db.dsn) == 0
    return postgres_db


def test_migrations_are_numbered_without_gaps():
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert head() == versions[-1] >= 3


def test_up_down_one_step_and_up_again(empty_db):
    dsn = empty_db.dsn
    assert tables(dsn) == {"schema_migrations"}

    upgrade(dsn)
    assert current_version(dsn) == head()
    assert applied(dsn) == list(range(1, head() + 1))
    assert set(REQUIRED_TABLES) <= tables(dsn)

    downgrade(dsn)
    assert current_version(dsn) == head() - 1
    assert "access_grants" not in tables(dsn)
    assert {"outbox_events", "audit_events", "audit_dead_letters"} <= tables(dsn)

    upgrade(dsn)
    assert current_version(dsn) == head()
    assert set(REQUIRED_TABLES) <= tables(dsn)
    upgrade(dsn)  # at head: nothing to do
    assert applied(dsn) == list(range(1, head() + 1))


def test_upgrade_to_a_target_and_downgrade_past_zero(empty_db):
    dsn = empty_db.dsn
    upgrade(dsn, target=1)
    assert current_version(dsn) == 1
    assert "outbox_events" in tables(dsn) and "audit_events" not in tables(dsn)
    downgrade(dsn, steps=5)
    assert current_version(dsn) == 0
    assert tables(dsn) == {"schema_migrations"}


def test_bad_arguments_are_refused(empty_db):
    with pytest.raises(MigrationError, match=r"no migration numbered 99; head is \d+"):
        upgrade(empty_db.dsn, target=99)
    with pytest.raises(MigrationError, match="steps must be at least 1, got 0"):
        downgrade(empty_db.dsn, steps=0)
    assert current_version(empty_db.dsn) == 0


def test_concurrent_upgrades_apply_each_step_once(empty_db):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(empty_db.dsn)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert applied(empty_db.dsn) == list(range(1, head() + 1))


def migrate(*args: str, dsn: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AEGIS_DATABASE_URL"}
    if dsn is not None:
        env["AEGIS_DATABASE_URL"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "aegis_service", "migrate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_up_down_and_errors(empty_db):
    up = migrate("up", dsn=empty_db.dsn)
    assert up.returncode == 0, up.stderr
    assert f"schema version {head()} (head {head()})" in up.stderr
    assert up.stdout == ""

    down = migrate("down", "--steps", "2", dsn=empty_db.dsn)
    assert down.returncode == 0, down.stderr
    assert current_version(empty_db.dsn) == head() - 2

    missing = migrate("up", dsn=None)
    assert missing.returncode == 2
    assert "AEGIS_DATABASE_URL: required for migrate" in missing.stderr

    unreachable = migrate("up", dsn="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert unreachable.returncode == 1
    assert "aegis-service: migrate up failed:" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
