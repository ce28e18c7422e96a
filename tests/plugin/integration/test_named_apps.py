"""Several different programs in one test, none of them the reference service, each with its own
health contract (HTTP, TCP, the ready line), started by spec or by the name the ``aegis_apps``
setting gives them; a contract that is not met fails the start saying what the probe saw."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import run_inner

from pytest_aegis import AppProcess, AppSpec, HttpGet, NatsServer, ReadyLine, ServerStartError, TcpConnect

PROGRAMS = Path(__file__).parent / "programs"
HTTP_APP = (sys.executable, str(PROGRAMS / "http_app.py"))
TCP_APP = (sys.executable, str(PROGRAMS / "tcp_app.py"))
WEB = AppSpec(name="web", command=HTTP_APP, health=HttpGet("/healthz"), ready_pattern=None)
ECHO = AppSpec(name="echo", command=TCP_APP, health=TcpConnect(), ready_pattern=None)

Factory = Callable[..., AppProcess]


def echo_line(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line)
        return sock.makefile("rb").readline()


def test_two_different_programs_run_side_by_side_each_by_its_own_contract(
    aegis_app_factory: Factory, aegis_nats: NatsServer
) -> None:
    web = aegis_app_factory(spec=WEB, env={"HTTP_APP_EXTRA": "given"})
    echo = aegis_app_factory(spec=ECHO)
    # Healthy by a 2xx GET, its body the reply; wired to the test's NATS like aegis_app.
    assert web.health_reply["path"] == "/healthz"
    assert web.health_reply["nats_url"] == aegis_nats.url
    assert web.health_reply["extra"] == "given"
    assert web.http_url == f"http://127.0.0.1:{web.port}"
    # Healthy by accepting a connection on its port; its own port, its own name.
    assert echo_line(echo.port, b"ping\n") == b"ping\n"
    assert echo.port != web.port
    assert web.name.startswith("web[web-") and echo.name.startswith("echo[echo-")


def test_a_restarted_app_listens_on_the_same_port_again(aegis_app_factory: Factory) -> None:
    echo = aegis_app_factory(spec=ECHO)
    port = echo.port
    echo.restart()
    assert echo.port == port
    assert echo_line(port, b"again\n") == b"again\n"


def test_an_app_whose_health_is_its_ready_line_is_ready_when_it_prints_it(aegis_app_factory: Factory) -> None:
    spec = AppSpec(
        name="quiet",
        command=(*TCP_APP, "--no-listen"),
        health=ReadyLine(),
        ready_pattern=r"^TCP-APP READY",
    )
    app = aegis_app_factory(spec=spec)
    assert app.is_running
    assert "TCP-APP READY (not listening)" in app.logs()


def test_an_http_health_check_answered_with_503_fails_the_start_showing_the_answer(
    aegis_app_factory: Factory,
) -> None:
    spec = AppSpec(name="sick", command=(*HTTP_APP, "503"), health=HttpGet("/healthz"), ready_pattern=None)
    with pytest.raises(ServerStartError) as caught:
        aegis_app_factory(spec=spec, start_timeout=1)
    message = str(caught.value)
    assert "never answered its health check within 1 s" in message
    assert "/healthz answered 503" in message


def test_a_tcp_health_check_on_a_port_nobody_listens_on_fails_the_start(aegis_app_factory: Factory) -> None:
    spec = AppSpec(name="deaf", command=(*TCP_APP, "--no-listen"), health=TcpConnect(), ready_pattern=None)
    with pytest.raises(ServerStartError) as caught:
        aegis_app_factory(spec=spec, start_timeout=1)
    assert "waiting for a TCP connection to its port" in str(caught.value)
    assert "Connection refused" in str(caught.value) or "Connect call failed" in str(caught.value)


def named_apps_project(inner: Any, apps: str) -> None:
    inner.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\naegis_app_start_timeout = 10\n"
        f"aegis_apps =\n{apps}"
    )


def test_apps_declared_in_ini_start_by_name_and_through_a_fixture_factory(inner: Any) -> None:
    named_apps_project(
        inner,
        f'    web command="{{python}} {PROGRAMS / "http_app.py"}" health=http:/healthz'
        ' env="HTTP_APP_EXTRA=ini"\n'
        f'    echo: command="{{python}} {PROGRAMS / "tcp_app.py"}" health=tcp\n',
    )
    inner.makeconftest("""
        from pytest_aegis import app_fixture

        web = app_fixture("web")
    """)
    inner.makepyfile("""
        import pytest
        from pytest_aegis import ConfigError

        def test_both(web, aegis_app_factory, aegis_apps):
            assert sorted(aegis_apps) == ["echo", "web"]
            assert web.health_reply["extra"] == "ini"
            echo = aegis_app_factory(app="echo")
            assert echo.spec.name == "echo" and echo.port != web.port

        def test_unknown_name(aegis_app_factory):
            with pytest.raises(ConfigError, match="app='audit'.*declared: echo, web"):
                aegis_app_factory(app="audit")
    """)
    run_inner(inner).assert_outcomes(passed=2)


def assert_usage_error(inner: Any, apps: str, message: str) -> None:
    """A session whose ``aegis_apps`` are ``apps`` stops at its start with ``message``."""
    named_apps_project(inner, apps)
    inner.makepyfile("def test_never(): pass")
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_app_line_is_a_usage_error_naming_the_line_and_the_key(inner: Any) -> None:
    assert_usage_error(
        inner,
        '    web command="x" health=http:/healthz\n    echo command=y health=udp\n',
        "*ini aegis_apps, line 2 ('echo command=y health=udp'): health='udp': 'udp' is not a health*",
    )


def test_an_app_starts_after_its_dependencies_and_its_env_names_their_handles(inner: Any) -> None:
    http_app = f"{{python}} {PROGRAMS / 'http_app.py'}"
    named_apps_project(
        inner,
        f'    web command="{http_app}" health=http:/healthz\n'
        f'    echo command="{{python}} {PROGRAMS / "tcp_app.py"}" health=tcp\n'
        f'    front command="{http_app}" health=http:/healthz depends_on=web,echo'
        ' env="HTTP_APP_EXTRA={web.http_url}+{echo.port}"\n'
        f'    sick command="{http_app} 503" health=http:/healthz start_timeout=1 depends_on=web\n',
    )
    inner.makepyfile("""
        import pytest
        from pytest_aegis import ServerStartError

        def test_dependencies_first(aegis_app_factory):
            front = aegis_app_factory(app="front")  # web and echo start first, in parallel
            web, echo = (i for i in aegis_app_factory.started if i.spec.name in ("web", "echo"))
            assert [i.spec.name for i in aegis_app_factory.started][-1] == "front"
            assert web.is_running and echo.is_running  # started on threads, alive after them
            assert front.health_reply["extra"] == f"{web.http_url}+{echo.port}"
            again = aegis_app_factory.start_set("front")  # all running: nothing new starts
            assert again["front"] is front, again
            assert [i.name for i in aegis_app_factory.started] == [web.name, echo.name, front.name]

        def test_a_failed_start_names_what_was_started(aegis_app_factory):
            with pytest.raises(ServerStartError) as caught:
                aegis_app_factory.start_set("sick")
            assert "/healthz answered 503" in str(caught.value)
            web = aegis_app_factory.started[0]
            assert caught.value.__notes__ == [
                f"apps started in this test so far: {web.name} (their logs are in the test's report)"
            ]
    """)
    run_inner(inner).assert_outcomes(passed=2)


def test_a_cycle_of_dependencies_is_a_usage_error_naming_it(inner: Any) -> None:
    assert_usage_error(
        inner,
        "    a command=x depends_on=b\n    b command=y depends_on=a\n",
        "*ini aegis_apps: apps depend on each other in a cycle: a -> b -> a*",
    )


def installed_package(inner: Any, apps: dict[str, str], module: str) -> None:
    """A package "installed" in the inner session's directory (on its sys.path): its dist-info
    declares ``apps`` (entry point name -> function) in the group pytest_aegis.apps."""
    info = inner.path / "their_apps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: their-apps\nVersion: 1.0\n")
    lines = "".join(f"{name} = their_apps:{function}\n" for name, function in apps.items())
    (info / "entry_points.txt").write_text(f"[pytest_aegis.apps]\n{lines}")
    (inner.path / "their_apps.py").write_text(module)


def test_an_installed_package_declares_its_apps_by_entry_point(inner: Any) -> None:
    installed_package(
        inner,
        {"orders": "orders"},
        f"def orders():\n"
        f"    return {{'command': '{{python}} {PROGRAMS / 'http_app.py'}', 'health': 'http:/healthz'}}\n",
    )
    inner.makepyfile("""
        def test_orders(aegis_app_factory, aegis_apps):
            assert "orders" in aegis_apps
            orders = aegis_app_factory(app="orders")
            assert orders.health_reply["path"] == "/healthz"
    """)
    run_inner(inner).assert_outcomes(passed=1)


def test_a_bad_entry_point_is_an_error_naming_it_and_its_package(inner: Any) -> None:
    installed_package(
        inner, {"orders": "orders"}, "def orders():\n    return {'command': 'x', 'health': 'udp'}\n"
    )
    inner.makepyfile("def test_orders(aegis_apps): pass")
    result = run_inner(inner)
    result.stdout.fnmatch_lines(
        ["*entry point orders = their_apps:orders (group pytest_aegis.apps, package their-apps): "
         "health='udp': 'udp' is not a health contract*"]
    )  # fmt: skip
    assert result.ret != 0
