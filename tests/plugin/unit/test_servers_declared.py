"""Third-party servers as specs: the ``aegis_servers`` lines, the presets, and the errors a bad
spec or line gets (naming the line and the key, listing what is valid)."""

from __future__ import annotations

import re

import pytest

from pytest_aegis import (
    ConfigError,
    CustomProbe,
    HttpGet,
    ReadyLine,
    ServerSpec,
    ServicePing,
    SpecError,
    TcpConnect,
)
from pytest_aegis.thirdparty.declared import parse_servers
from pytest_aegis.thirdparty.presets import REDIS
from pytest_aegis.thirdparty.spec import render

ORIGIN = "ini aegis_servers"


def test_a_preset_by_name_and_a_server_of_ones_own() -> None:
    servers = parse_servers(
        """
        redis
        # a comment
        cache  preset=redis image=redis:7-alpine start_timeout=5
        search binary=opensearch args="-E http.port={port} -E path.data={dir}" health=http:/_cluster/health url=http://{host}:{port}
        """,
        ORIGIN,
    )
    assert list(servers) == ["redis", "cache", "search"]
    assert servers["redis"] == REDIS
    assert servers["cache"].image == "redis:7-alpine"
    assert servers["cache"].start_timeout == 5
    assert servers["cache"].binary == "redis-server" and isinstance(servers["cache"].health, CustomProbe)
    search = servers["search"]
    assert search.args == ("-E", "http.port={port}", "-E", "path.data={dir}")
    assert search.health == HttpGet("/_cluster/health")
    assert render(search.args, host="127.0.0.1", port=4000, directory="/d") == (
        "-E",
        "http.port=4000",
        "-E",
        "path.data=/d",
    )


def test_health_ready_over_a_preset_keeps_its_ready_line() -> None:
    [spec] = parse_servers("quick preset=redis health=ready", ORIGIN).values()
    assert spec.health == ReadyLine() and spec.ready_pattern == REDIS.ready_pattern


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("cache colour=red", r"'colour' is not a key a server has; the keys: preset \("),
        ("cache preset=memcached", r"preset='memcached': no such server; known: redis"),
        (
            "cache binary=x health=srv",
            r"health='srv': a third-party server's health is tcp, http:/PATH or re",
        ),
        ("cache binary=x start_timeout=-1", r"start_timeout='-1': not a positive number of seconds"),
        (
            "cache binary=x args='--port {prt}'",
            r"names \{prt\}; the placeholders are \{host\}, \{port\}, \{dir",
        ),
        ("cache args=--x", r"has neither a binary \(local backend\) nor an image \(docker backend\)"),
        ("cache binary", r"'binary': expected key=value"),
        ("1cache binary=x", r"a server's name starts with a letter"),
    ],
)
def test_a_bad_line_names_the_setting_the_line_and_the_key(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_servers(f"redis\n{line}", ORIGIN)
    assert str(raised.value).startswith(f"{ORIGIN}, line 2 ({line!r}): ")
    assert re.search(message, str(raised.value)), str(raised.value)


def test_a_server_declared_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"line 2 .*the server 'redis' is declared twice"):
        parse_servers("redis\nredis image=redis:7", ORIGIN)


def test_a_spec_refuses_an_apps_contract_and_a_ready_contract_without_a_pattern() -> None:
    with pytest.raises(SpecError, match=r"ServicePing\(name=None\) is an app's contract \(over NATS\)"):
        ServerSpec(name="x", binary="x", health=ServicePing())  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"health=ready .* needs a ready_pattern"):
        ServerSpec(name="x", binary="x", health=ReadyLine())
    assert ServerSpec(name="x", binary="x").health == TcpConnect()


def test_the_external_variable_is_named_after_the_server() -> None:
    assert ServerSpec(name="mail-catcher", image="m").external_variable == "AEGIS_EXTERNAL_MAIL_CATCHER_URL"
