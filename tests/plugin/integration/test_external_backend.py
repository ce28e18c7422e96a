"""--aegis-backend=external: the fixtures and helpers against servers the harness did not start.

The "external" servers are started by this (outer) session: a nats-server with TLS +
user/password + JetStream (``nats_server_factory``) and the outer ``postgres_server``.  An inner
pytest session then points ``--aegis-backend=external`` at them.  Credentials go through the
environment, never the command line.
"""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import pytest
from nats.js.api import KeyValueConfig
from nats.js.errors import NoKeysError
from support import external_env, run_inner

from pytest_aegis.aio import run_sync
from pytest_aegis.assertions.service import DEFINITIONS_BUCKET, INSTANCES_BUCKET
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.postgres import PostgresHandle

# The default user may do anything but publish to forbidden.> (for assert_permission_denied).
PERMISSIONS = {"publish": {"deny": ["forbidden.>"]}}
PRE_EXISTING = "KEEP_ME"
SERVICE_BUCKETS = (INSTANCES_BUCKET, DEFINITIONS_BUCKET)

INNER_TESTS = """
import psycopg
import pytest

from pytest_aegis import (
    assert_health_check,
    assert_instance_registered,
    assert_permission_denied,
    assert_permitted,
    assert_registry_roundtrip,
)
from pytest_aegis.errors import ExternalServerError


@pytest.mark.asyncio
async def test_client_and_permissions(nats_client, nats_server):
    assert nats_server.url.startswith("tls://")
    await assert_permitted(nats_client, "allowed.subject")
    await assert_permission_denied(nats_client, "forbidden.subject")


@pytest.mark.asyncio
async def test_service_health_and_registry(aegis_app, nats_client):
    await assert_health_check(nats_client, service=aegis_app.service_name, within=2)
    await assert_instance_registered(nats_client, aegis_app.service_name, aegis_app.instance_id, within=5)
    await assert_registry_roundtrip(aegis_app.http_url, nats_client)


@pytest.mark.nats_secure()
@pytest.mark.asyncio
async def test_secure_spec_the_server_offers_runs(nats_secure, nats_client):
    sub = await nats_client.subscribe("echo.x")
    await nats_client.publish("echo.x", b"hi")
    assert (await sub.next_msg(timeout=2)).data == b"hi"


@pytest.mark.nats_secure(auth="token")
def test_token_spec_is_skipped(nats_secure):
    raise AssertionError("must not run on external")


@pytest.mark.nats_secure(mtls=True)
def test_mtls_spec_is_skipped(nats_client):
    raise AssertionError("must not run on external")


def test_lifecycle_is_refused(nats_server, postgres_server):
    refused = r"stop\\(\\) is not available on the external backend.*not ours to stop"
    with pytest.raises(ExternalServerError, match=refused):
        nats_server.stop()
    with pytest.raises(ExternalServerError, match="not ours to kill"):
        nats_server.kill()
    with pytest.raises(ExternalServerError, match="not ours to restart"):
        nats_server.restart()
    with pytest.raises(ExternalServerError, match="PostgreSQL server at .* not ours to stop"):
        postgres_server.stop()


def test_pause_is_refused(nats_server, postgres_server):
    for server in (nats_server, postgres_server):
        with pytest.raises(ExternalServerError, match=r"pause\\(\\) is not available.*not ours to pause"):
            server.pause()
        with pytest.raises(ExternalServerError, match="not ours to pause"), server.paused():
            pass
        with pytest.raises(ExternalServerError, match="not ours to resume"):
            server.resume()
        assert not server.is_paused


@pytest.mark.parametrize("turn", [1, 2])
def test_postgres_db_is_migrated_and_fresh(postgres_db, turn):
    assert postgres_db.name.startswith("test_")
    with postgres_db.connect(autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('public.leftover')").fetchone() == (None,)
        conn.execute("CREATE TABLE leftover (turn int)")
        (version,) = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert version > 0, "the template should carry the migrations"


def test_postgres_tx(postgres_tx):
    postgres_tx.execute("CREATE TABLE only_in_tx (x int)")
"""


@pytest.fixture
def external_nats(nats_server_factory: Any) -> NatsServer:
    server: NatsServer = nats_server_factory(auth="userpass", tls=True, permissions=PERMISSIONS)
    return server


def stream_names(server: NatsServer) -> set[str]:
    async def names() -> set[str]:
        nc = await server.connect()
        try:
            return {info.config.name for info in await nc.jetstream().streams_info()}
        finally:
            await nc.close()

    return run_sync(names)


def add_stream(server: NatsServer, name: str, description: str) -> None:
    async def add() -> None:
        nc = await server.connect()
        try:
            js = nc.jetstream()
            await js.add_stream(name=name, subjects=[f"{name.lower()}.>"], description=description)
        finally:
            await nc.close()

    run_sync(add)


def add_bucket(server: NatsServer, bucket: str) -> None:
    async def add() -> None:
        nc = await server.connect()
        try:
            await nc.jetstream().create_key_value(
                KeyValueConfig(bucket=bucket, history=1, description="shared")
            )
        finally:
            await nc.close()

    run_sync(add)


def live_keys(server: NatsServer, bucket: str) -> list[str]:
    """The bucket's keys with a value (delete and purge markers do not count)."""

    async def keys() -> list[str]:
        nc = await server.connect()
        try:
            kv = await nc.jetstream().key_value(bucket)
            try:
                return sorted(await kv.keys())
            except NoKeysError:
                return []
        finally:
            await nc.close()

    return run_sync(keys)


def databases(server: PostgresHandle) -> set[str]:
    with psycopg.connect(server.dsn) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


@pytest.mark.parametrize(
    ("xdist", "buckets_exist"),
    [((), True), (("-n", "2"), False)],
    ids=["one-process-shared-buckets", "xdist-fresh-server"],
)
def test_the_fixtures_and_helpers_run_against_external_servers_and_leave_nothing_behind(
    inner: Any,
    monkeypatch: pytest.MonkeyPatch,
    external_nats: NatsServer,
    postgres_server: PostgresHandle,
    xdist: tuple[str, ...],
    buckets_exist: bool,
) -> None:
    add_stream(external_nats, PRE_EXISTING, "pytest-aegis: made before the session, must survive it")
    if buckets_exist:  # the service's buckets as shared infrastructure: kept, and no keys of ours left
        for bucket in SERVICE_BUCKETS:
            add_bucket(external_nats, bucket)
    streams_before = stream_names(external_nats)
    databases_before = databases(postgres_server)
    external_env(monkeypatch, external_nats, AEGIS_EXTERNAL_PG_DSN=postgres_server.dsn)
    inner.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "aegis_pg_migrations = aegis_service.migrations:upgrade\n"
    )
    inner.makepyfile(test_inner=INNER_TESTS)

    # Under xdist the workers share the external servers; the controller cleans up after them all.
    result = run_inner(inner, "-rs", "-W", "error", *xdist)

    out = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=8, skipped=2)
    result.stdout.fnmatch_lines(
        [
            f"aegis: backend external (nats-server {external_nats.version} at {external_nats.url}*"
            "tls+userpass+js, TLS verified with the CA*",
            "aegis: postgres *: external at postgresql://*",
        ]
    )
    # The skip lines come in the inner session's test order (random under pytest-randomly).
    for skipped in (
        "SKIPPED*nats_secure(tls+token+js) needs a server the harness configures; the external backend "
        f"uses the server at {external_nats.url} (tls+userpass+js), which lacks: auth='token'*",
        "SKIPPED*nats_secure(mtls+userpass+js) needs a server the harness configures*which lacks: mtls*",
    ):
        result.stdout.fnmatch_lines([skipped])
    assert external_nats.credentials["password"] not in out
    assert postgres_server.password not in out
    # The service made its KV buckets during the session: gone again; the stream that was
    # there before (same description prefix) is untouched.
    assert stream_names(external_nats) == streams_before
    if buckets_exist:
        assert {bucket: live_keys(external_nats, bucket) for bucket in SERVICE_BUCKETS} == {
            bucket: [] for bucket in SERVICE_BUCKETS
        }
    assert databases(postgres_server) == databases_before


def test_a_wrong_password_errors_naming_the_auth_failure(
    inner: Any, monkeypatch: pytest.MonkeyPatch, external_nats: NatsServer
) -> None:
    external_env(monkeypatch, external_nats, AEGIS_EXTERNAL_NATS_PASSWORD="not-the-password")
    inner.makepyfile("def test_uses_nats(nats_client):\n    pass\n")
    result = run_inner(inner)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "aegis: backend external (unavailable: external NATS at " + external_nats.url + "*",
            f"*BackendUnavailable: external NATS at {external_nats.url} (as aegis): cannot connect: "
            "*Authorization Violation*check the NATS credentials*",
        ]
    )
    assert "not-the-password" not in result.stdout.str() + result.stderr.str()


def test_an_unreachable_url_errors_with_the_url_and_the_reason(
    inner: Any, monkeypatch: pytest.MonkeyPatch, external_nats: NatsServer
) -> None:
    # A port bound but not listening (no fixed port): connections to it are refused while the
    # inner session runs.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        external_env(monkeypatch, external_nats, AEGIS_EXTERNAL_NATS_URL=f"tls://127.0.0.1:{port}")
        inner.makepyfile("def test_uses_nats(nats_server):\n    pass\n")
        result = run_inner(inner)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*external NATS at tls://127.0.0.1:{port} (as aegis): cannot connect: *Connect call failed*"]
    )


def test_tls_without_a_ca_verifies_with_the_system_store_and_fails_naming_the_ca_setting(
    inner: Any, monkeypatch: pytest.MonkeyPatch, external_nats: NatsServer
) -> None:
    external_env(monkeypatch, external_nats, AEGIS_EXTERNAL_NATS_CA=None)
    inner.makepyfile("def test_uses_nats(nats_server):\n    pass\n")
    result = run_inner(inner)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*cannot connect: *CERTIFICATE_VERIFY_FAILED*the server's certificate is not trusted: "
            "pass its CA with --aegis-external-nats-ca / AEGIS_EXTERNAL_NATS_CA*"
        ]
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"AEGIS_EXTERNAL_NATS_URL": None},
            "*--aegis-backend=external needs the NATS server's URL: set --aegis-external-nats-url / "
            "AEGIS_EXTERNAL_NATS_URL*",
        ),
        (
            {
                "AEGIS_EXTERNAL_NATS_USER": None,
                "AEGIS_EXTERNAL_NATS_PASSWORD": None,
                "AEGIS_EXTERNAL_NATS_CREDS": "/nonexistent/app.creds",
            },
            "*env AEGIS_EXTERNAL_NATS_CREDS: the NATS creds file /nonexistent/app.creds does not exist*",
        ),
    ],
    ids=["missing-url", "missing-creds-file"],
)
def test_bad_settings_error_naming_the_setting(
    inner: Any,
    monkeypatch: pytest.MonkeyPatch,
    external_nats: NatsServer,
    overrides: dict[str, str | None],
    message: str,
) -> None:
    """A usage error when the session starts, reported once, naming the env variable set."""
    external_env(monkeypatch, external_nats, **overrides)
    inner.makepyfile("def test_uses_nats(nats_server):\n    pass\ndef test_too(nats_server):\n    pass\n")
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: aegis: {message.lstrip('*')}"])
    assert result.stderr.str().count("aegis:") == 1


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (
            "env",
            "tls://127.0.0.1:4222,tls://ci:s3cret@127.0.0.1:99999,tls://127.0.0.1:4224",
            "env AEGIS_EXTERNAL_NATS_URL: entry 2 of 3, 'tls://ci:***@127.0.0.1:99999', has an invalid "
            "port; expected nats://host:port or tls://host:port with a port from 1 to 65535 (a cluster: "
            "its nodes' URLs, comma-separated)",
        ),
        (
            "ini",
            "tls://127.0.0.1:4222, tls://127.0.0.1:4223, http://127.0.0.1:4224",
            "ini aegis_external_nats_url: entry 3 of 3, 'http://127.0.0.1:4224', is not a NATS URL; "
            "expected nats://host:port or tls://host:port (a cluster: its nodes' URLs, comma-separated)",
        ),
        (
            "flag",
            "tls://127.0.0.1:4222,nats://127.0.0.1:4223",
            "--aegis-external-nats-url: entry 2 of 2, 'nats://127.0.0.1:4223', is a nats:// URL after "
            "tls:// ones; the nodes of one cluster take one scheme (tls:// when they require TLS)",
        ),
    ],
    ids=["env-bad-port", "ini-bad-scheme", "flag-mixed-schemes"],
)
def test_a_bad_url_in_the_list_is_one_usage_error_naming_the_entry_and_where_it_was_set(
    inner: Any, monkeypatch: pytest.MonkeyPatch, where: str, value: str, message: str
) -> None:
    monkeypatch.setenv("AEGIS_BACKEND", "external")
    monkeypatch.delenv("AEGIS_EXTERNAL_NATS_URL", raising=False)
    args: list[str] = []
    if where == "env":
        monkeypatch.setenv("AEGIS_EXTERNAL_NATS_URL", value)
    elif where == "ini":
        inner.makeini(
            f"[pytest]\nasyncio_default_fixture_loop_scope = function\naegis_external_nats_url = {value}\n"
        )
    else:
        args.append(f"--aegis-external-nats-url={value}")
    inner.makepyfile("def test_uses_nats(nats_server):\n    pass\ndef test_too(nats_server):\n    pass\n")

    result = run_inner(inner, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines[:1] == [f"ERROR: aegis: {message}"]
    assert result.stderr.str().count("aegis:") == 1
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
