"""Third-party servers beside the user's programs, proven with Redis: on the local backend
Debian's ``redis-server`` (``make test`` installs it), on docker the sandbox's ``redis:7``.  Every
lifecycle verb a server here has, its log in the report, its port held across a restart, behind
a fault proxy, and the failures a user must be able to read (a server that exits, one that is not
installed, one the external backend has no URL for)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from support import run_inner

from pytest_aegis import (
    AppSpec,
    BackendUnavailable,
    ExternalServerError,
    FaultProxy,
    HttpGet,
    NatsServer,
    ServerFaultProxy,
    ServerSpec,
    ServerStartError,
    ThirdPartyServer,
)
from pytest_aegis.app.factory import AppFactory
from pytest_aegis.backends.external.thirdparty import ExternalServer
from pytest_aegis.fixtures.servers import ServerFactory
from pytest_aegis.harness import get_harness
from pytest_aegis.thirdparty.presets import REDIS

#: Seconds a client waits for an answer (a paused server never gives one).
CLIENT_TIMEOUT = 2.0


@pytest.fixture
def start(aegis_server_factory: ServerFactory) -> ServerFactory:
    return aegis_server_factory


def started(factory: ServerFactory) -> ThirdPartyServer:
    """Redis from ``factory``; with ``AEGIS_REQUIRE_REDIS=1`` (CI) a skip for a missing
    redis-server fails the test instead."""
    try:
        return factory("redis")
    except pytest.skip.Exception as exc:
        if os.environ.get("AEGIS_REQUIRE_REDIS") == "1":
            pytest.fail(f"{exc.msg} (AEGIS_REQUIRE_REDIS=1: this run must not skip the Redis tests)")
        raise


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=CLIENT_TIMEOUT, socket_connect_timeout=CLIENT_TIMEOUT)


def test_redis_starts_ready_and_serves_at_its_url(start: ServerFactory) -> None:
    server = started(start)
    assert server.url == f"redis://127.0.0.1:{server.port}"
    assert server.health_reply == {"port": server.port}  # the PING probe passed
    with client(server.url) as r:
        assert r.set("order:1", "placed") is True
        assert r.get("order:1") == b"placed"
    assert server.env() == {
        "REDIS_URL": server.url,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(server.port),
    }
    assert "Ready to accept connections" in server.logs()


def test_a_restart_binds_the_same_port_and_a_kill_is_a_crash(start: ServerFactory) -> None:
    server = started(start)
    port, first_pid = server.port, server.pid
    assert server.kill() is not None
    assert not server.is_running
    with pytest.raises(redis.ConnectionError, match=r"Connection refused|Error 111"):
        client(server.url).ping()
    server.restart()
    assert server.port == port
    assert server.pid != first_pid
    with client(server.url) as r:
        assert r.ping() is True


def test_a_paused_server_holds_connections_unanswered_until_resumed(start: ServerFactory) -> None:
    server = started(start)
    with client(server.url) as r:
        assert r.ping() is True
        server.pause()
        assert server.is_paused
        with pytest.raises(redis.TimeoutError):
            r.ping()
        server.resume()
        assert not server.is_paused
        r.connection_pool.disconnect()  # the timed-out connection has a late PONG in it
        assert r.ping() is True


def test_stopped_after_the_test_its_port_given_back_and_its_process_registered_for_the_sweep(
    request: pytest.FixtureRequest, start: ServerFactory
) -> None:
    server = started(start)
    harness = get_harness(request.config)
    if harness.config.backend in ("auto", "local"):  # a child of pytest, swept after a kill -9
        assert (harness.session.dir / "procs" / str(server.pid)).is_file()
    start.close()  # what the fixture's teardown does
    assert not server.is_running
    with socket.socket() as sock:  # the port is free again (the lease released; nothing listens)
        sock.bind(("127.0.0.1", server.port))


def test_behind_a_fault_proxy_a_cut_breaks_the_connection(start: ServerFactory, aegis_proxy: object) -> None:
    server = started(start)
    proxy = aegis_proxy(server)  # type: ignore[operator]
    assert isinstance(proxy, ServerFaultProxy) and isinstance(proxy, FaultProxy)
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}"
    assert proxy.env()["REDIS_PORT"] == str(proxy.port)
    with client(proxy.url) as r:
        assert r.set("k", "v") is True
        with proxy.cut():
            with pytest.raises(redis.ConnectionError):
                r.get("k")
        r.connection_pool.disconnect()
        assert r.get("k") == b"v"


def test_a_server_that_exits_fails_the_start_with_its_own_words(start: ServerFactory) -> None:
    broken = dataclasses.replace(
        REDIS,
        name="broken",
        args=(*REDIS.args, "--no-such-directive", "yes"),
        image_args=(*(REDIS.image_args or ()), "--no-such-directive", "yes"),
    )
    try:
        start(spec=broken)
    except pytest.skip.Exception:
        started(start)  # the same skip (or, in CI, failure) as the other tests
        raise
    except ServerStartError as exc:
        assert exc.exit_code not in (None, 0)
        assert "Bad directive or wrong number of arguments" in str(exc)
        assert "no-such-directive" in str(exc)
    else:
        pytest.fail("a server that exits at once started")


def test_a_binary_that_is_not_installed_skips_the_test_saying_how_to_get_it(start: ServerFactory) -> None:
    # No image: on the docker backend too it is a local process.
    missing = ServerSpec(name="mail", binary="no-such-mailserver-aegis", install_hint="apt-get install mail")
    with pytest.raises(pytest.skip.Exception) as skipped:
        start(spec=missing)
    assert "no-such-mailserver-aegis (server 'mail') not found" in skipped.value.msg
    assert "PATH: no no-such-mailserver-aegis" in skipped.value.msg
    assert "Hint: apt-get install mail" in skipped.value.msg


def test_on_the_external_backend_it_is_the_server_at_its_url_and_not_ours_to_kill(
    request: pytest.FixtureRequest, start: ServerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    running = started(start)
    session = get_harness(request.config).session
    monkeypatch.delenv(REDIS.external_variable, raising=False)
    with pytest.raises(BackendUnavailable, match=f"set {REDIS.external_variable} to its URL"):
        ThirdPartyServer(REDIS, ExternalServer, session=session)
    monkeypatch.setenv(REDIS.external_variable, running.url)
    with ThirdPartyServer(REDIS, ExternalServer, session=session) as existing:
        existing.start()
        assert (existing.host, existing.port) == ("127.0.0.1", running.port)
        assert existing.url == running.url
        with pytest.raises(ExternalServerError, match=r"kill\(\) is not available on the external backend"):
            existing.kill()
    assert running.is_running  # closing the external handle left the server alone


INNER_CONFTEST = """
import pytest
from pytest_aegis import server_fixture

redis = server_fixture("redis", scope="session")
cache = server_fixture("cache")
"""

INNER_TESTS = """
import redis as redis_py

def test_the_session_server(redis):
    assert redis_py.Redis.from_url(redis.url).ping()

def test_the_declared_one_fails_and_its_log_is_in_the_report(cache, redis):
    assert cache.port != redis.port and cache.spec.start_timeout == 7
    assert False, "on purpose"
"""


def test_servers_declared_in_ini_as_conftest_fixtures_their_logs_in_a_failing_report(inner: Any) -> None:
    if shutil.which("redis-server") is None and os.environ.get("AEGIS_REQUIRE_REDIS") != "1":
        pytest.skip("no redis-server on PATH (make test installs it)")
    inner.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "aegis_servers =\n    cache preset=redis start_timeout=7\n"
    )
    inner.makeconftest(INNER_CONFTEST)
    inner.makepyfile(test_inner=INNER_TESTS)
    result = run_inner(inner)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*aegis: cache-* log*", "*Ready to accept connections*"])


def test_a_bad_server_line_stops_the_session_at_its_start(inner: Any) -> None:
    inner.makeini("[pytest]\naegis_servers =\n    redis\n    cache preset=redis colour=red\n")
    inner.makepyfile("def test_never(): pass")
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*ini aegis_servers, line 2 ('cache preset=redis colour=red'): colour='red': 'colour' is not a key*"]
    )


PROGRAMS = Path(__file__).parent / "programs"
HTTP_APP = (sys.executable, str(PROGRAMS / "http_app.py"))
#: An app that needs Redis: it starts after it, told its URL (http_app echoes HTTP_APP_EXTRA).
ON_REDIS = AppSpec(
    name="web",
    command=HTTP_APP,
    health=HttpGet(),
    depends_on=("redis",),
    env={"HTTP_APP_EXTRA": "{redis.url}"},
)
#: An app that needs that app.
FRONT = AppSpec(name="front", command=HTTP_APP, health=HttpGet(), depends_on=("web",))


@pytest.fixture(scope="session")
def aegis_apps(aegis_apps: Mapping[str, AppSpec]) -> Mapping[str, AppSpec]:
    return {**aegis_apps, "web": ON_REDIS, "front": FRONT}


def test_an_app_that_depends_on_a_server_starts_after_it_knowing_its_url(
    aegis_app_factory: AppFactory, start: ServerFactory
) -> None:
    started(start)  # the skip (or, in CI, the failure) of a missing redis-server, said as above
    start.close()
    start.started.clear()
    web = aegis_app_factory(app="web")
    [redis_server] = start.started  # started for it, by name
    assert web.health_reply["extra"] == redis_server.url
    with client(redis_server.url) as r:
        assert r.ping() is True


def test_dependencies_started_for_an_app_share_its_nats_server(
    aegis_app_factory: AppFactory, nats_server_factory: Callable[..., NatsServer], aegis_nats: NatsServer
) -> None:
    other = nats_server_factory()
    front = aegis_app_factory(app="front", nats=other)
    web = next(instance for instance in aegis_app_factory.started if instance.spec.name == "web")
    assert front.health_reply["nats_url"] == web.health_reply["nats_url"] == other.url != aegis_nats.url
