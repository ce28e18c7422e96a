"""Wiring your own service to ``aegis_app`` without traps (issue 14, item 2): the interpreter and
directory its command runs with, the start timeout, ``aegis_app_env`` checked once, the database
URL, ``NatsServer.env(as_user=...)`` and a prompt "no responders".

Each inner session runs a tiny service (``svc.py``) that answers its health check with what it was
given: the interpreter it runs on, its working directory, and its database URL.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import nats
import pytest
from support import run_inner

from pytest_aegis import NatsServer, assert_health_check

SERVICE = """
import asyncio, json, os, sys

import nats


async def main() -> None:
    nc = await nats.connect(os.environ["APP_NATS_URL"])
    name = os.environ["AEGIS_SERVICE_NAME"]

    async def health(msg) -> None:
        doc = {"service": name, "status": "healthy", "python": sys.executable, "cwd": os.getcwd(),
               "db": os.environ.get("APP_DB"), "db_aegis": os.environ.get("AEGIS_DATABASE_URL")}
        await msg.respond(json.dumps(doc).encode())

    await nc.subscribe(os.environ["AEGIS_HEALTH_SUBJECT"], cb=health)
    await asyncio.Event().wait()


asyncio.run(main())
"""

#: The inner test: starts the service and reports what it answered.
PROBE = """
import json

import pytest

from pytest_aegis import assert_health_check


@pytest.mark.asyncio
async def test_wired(aegis_app, aegis_nats, {extra}):
    nc = await aegis_nats.connect()
    try:
        doc = await assert_health_check(nc, "health.check", service=aegis_app.service_name, within=5)
    finally:
        await nc.close()
    print("ANSWER=" + json.dumps(doc))
"""

ENV_MAP = "APP_NATS_URL=AEGIS_NATS_URL APP_DB=AEGIS_DATABASE_URL"


def project(pytester: Any, command: str, *, env_map: str = ENV_MAP, extra: str = "aegis_config") -> Path:
    """A project with ``svc.py`` at its root, its settings in ``tox.ini`` and its test in ``sub/``."""
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        f"aegis_app_command = {command}\naegis_app_env = {env_map}\n"
    )
    (pytester.path / "svc.py").write_text(SERVICE)
    sub = pytester.mkdir("sub")
    (sub / "test_wired.py").write_text(PROBE.format(extra=extra))
    return sub


def answer(result: Any) -> dict[str, Any]:
    import json

    doc: dict[str, Any] = json.loads(printed(result, "ANSWER="))
    return doc


def printed(result: Any, prefix: str) -> str:
    """What the inner test printed after ``prefix`` (``-s``: pytest's progress may precede it)."""
    lines = [line.partition(prefix)[2] for line in result.stdout.lines if prefix in line]
    assert lines, result.stdout.str()
    return lines[-1]


@pytest.mark.parametrize("command", ["python svc.py", "python3 svc.py", "{python} {rootdir}/svc.py"])
def test_the_command_runs_on_pytests_interpreter_in_the_rootdir(
    inner: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    """Run from a subdirectory, with a ``python`` on PATH that is not the venv's (it fails): the
    service still runs on the interpreter running pytest, from the rootdir."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("python", "python3"):
        (shims / name).write_text("#!/bin/sh\necho 'the wrong python' >&2\nexit 3\n")
        (shims / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(project(inner, command))
    result = run_inner(inner, "-s")
    result.assert_outcomes(passed=1)
    doc = answer(result)
    assert doc["python"] == sys.executable
    assert doc["cwd"] == str(inner.path)


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        (("--aegis-app-start-timeout=1",), {}, ""),
        ((), {"AEGIS_APP_START_TIMEOUT": "1"}, ""),
        ((), {}, "aegis_app_start_timeout = 1\n"),
    ],
    ids=["flag", "env", "ini"],
)
def test_the_start_timeout_is_a_setting(
    inner: Any, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], env: dict[str, str], ini: str
) -> None:
    """A service that never answers fails its start after the setting's 1 s, not a fixed 30 s."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    inner.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        f"aegis_app_command = {{python}} -c 'import time; time.sleep(60)'\n{ini}"
    )
    inner.makepyfile("def test_x(aegis_app):\n    pass\n")
    result = run_inner(inner, *args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*never answered its health check within 1 s*aegis-app-start-timeout*"])


@pytest.mark.parametrize(
    ("env", "ini", "origin"),
    [({}, "aegis_app_env = APP_URL=AEGIS_NATS_ULR\n", "ini aegis_app_env"),
     ({"AEGIS_APP_ENV": "APP_URL=AEGIS_NATS_ULR"}, "", "env AEGIS_APP_ENV")],
    ids=["ini", "env"],
)  # fmt: skip
def test_a_typo_in_aegis_app_env_is_one_usage_error_listing_the_variables(
    inner: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], ini: str, origin: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    inner.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}")
    inner.makepyfile("def test_x(aegis_app):\n    pass\ndef test_y(aegis_app):\n    pass\n")
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: aegis_app_env: 'APP_URL=AEGIS_NATS_ULR': AEGIS_NATS_ULR is not a variable the harness "
            f"gives a service; the harness's variables: AEGIS_NATS_URL, *AEGIS_DATABASE_URL (set by {origin})"
        ]
    )
    assert result.stderr.str().count("is not a variable the harness gives") == 1


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [("postgres_db", "postgres_db"), ("postgres_server", "postgres_server"), ("aegis_config", None)],
)
def test_the_service_gets_the_tests_database(
    inner: Any, monkeypatch: pytest.MonkeyPatch, fixture: str, expected: str | None
) -> None:
    """``AEGIS_DATABASE_URL`` (renamed by ``aegis_app_env`` like the others) is the test's
    database when it uses ``postgres_db`` or ``postgres_server``, and absent otherwise."""
    sub = project(inner, "python svc.py", extra=fixture)
    test = sub / "test_wired.py"
    test.write_text(test.read_text() + f'    print("DSN=" + str(getattr({fixture}, "dsn", "")))\n')
    monkeypatch.chdir(sub)
    result = run_inner(inner, "-s")
    result.assert_outcomes(passed=1)
    doc = answer(result)
    dsn = printed(result, "DSN=")
    assert doc["db"] == doc["db_aegis"]
    assert doc["db"] == (dsn if expected else None)


@pytest.mark.asyncio
@pytest.mark.nats_secure(auth="userpass", tls=True, users={"reader": {}})
async def test_env_as_user_points_a_service_at_the_server_as_that_user(nats_secure: NatsServer) -> None:
    env = nats_secure.env(as_user="reader")
    default = nats_secure.env()
    assert env["AEGIS_NATS_USER"] == "reader" != default["AEGIS_NATS_USER"]
    assert env["AEGIS_NATS_PASSWORD"] != default["AEGIS_NATS_PASSWORD"]
    import ssl

    context = ssl.create_default_context(cafile=env["AEGIS_NATS_TLS_CA"])
    nc = await nats.connect(
        env["AEGIS_NATS_URL"],
        user=env["AEGIS_NATS_USER"],
        password=env["AEGIS_NATS_PASSWORD"],
        tls=context,
        allow_reconnect=False,
        connect_timeout=5,
    )
    try:
        assert nc.is_connected
    finally:
        await nc.close()
    with pytest.raises(KeyError, match=r"no user 'nobody' on this server; its users: .*reader"):
        nats_secure.env(as_user="nobody")


@pytest.mark.asyncio
async def test_no_responders_ends_a_health_check_at_once(nats_server: NatsServer) -> None:
    """Nobody subscribed: the server says so, and the check fails then, not after ``within``
    (which here is far longer than the test's own deadline)."""
    nc = await nats_server.connect()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(AssertionError, match="no responders: the server says nobody is subscribed"):
                await assert_health_check(nc, "nobody.listens.here", within=60)
    finally:
        await nc.close()


OVERRIDE = """
import json

import pytest

from pytest_aegis import assert_health_check


@pytest.mark.asyncio
async def test_wired(aegis_app_factory, aegis_nats):
    app = aegis_app_factory(env={"AEGIS_DATABASE_URL": "postgresql://given@127.0.0.1:1/x"})
    nc = await aegis_nats.connect()
    try:
        doc = await assert_health_check(nc, "health.check", service=app.service_name, within=5)
    finally:
        await nc.close()
    print("ANSWER=" + json.dumps(doc))
"""


def test_a_factory_override_of_a_harness_variable_reaches_its_renamed_copy(inner: Any) -> None:
    """``env=`` overriding ``AEGIS_DATABASE_URL`` changes ``APP_DB`` (its copy) as well: an
    override meant to break the service (a wrong password) must reach the name it reads."""
    sub = project(inner, "{python} svc.py")
    (sub / "test_wired.py").write_text(OVERRIDE)
    result = run_inner(inner, "-s")
    result.assert_outcomes(passed=1)
    doc = answer(result)
    assert doc["db"] == doc["db_aegis"] == "postgresql://given@127.0.0.1:1/x"


def test_an_instance_pointed_elsewhere_starts_no_session_server(
    aegis_app_factory: Any, nats_server_factory: Any, request: pytest.FixtureRequest
) -> None:
    aegis_app_factory(nats=nats_server_factory(auth="token"))
    assert "aegis_nats" not in request.fixturenames and "nats_server" not in request.fixturenames
    aegis_app_factory()  # one without `nats` is wired to the test's server: the plain one here
    assert "nats_server" in request.fixturenames
