"""The pure logic of starting several apps: dependency waves and env references."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytest_aegis import AppSpec, ConfigError
from pytest_aegis.app.declared import parse_apps, start_order
from pytest_aegis.app.factory import render_env


def specs(**deps: tuple[str, ...]) -> dict[str, AppSpec]:
    return {name: AppSpec(name=name, command=("x",), depends_on=d) for name, d in deps.items()}


def test_independent_apps_share_a_wave_and_dependents_follow() -> None:
    apps = specs(db=(), cache=(), api=("db", "cache"), front=("api",), other=())
    waves = start_order(["front"], apps)
    assert [sorted(wave) for wave in waves] == [["cache", "db"], ["api"], ["front"]]
    assert start_order(["other", "db"], apps) == [["other", "db"]]


def test_a_cycle_names_its_path() -> None:
    with pytest.raises(ConfigError, match="cycle: a -> b -> c -> a"):
        start_order(["a"], specs(a=("b",), b=("c",), c=("a",)))


def test_an_unknown_dependency_names_who_needs_it() -> None:
    with pytest.raises(ConfigError, match="api's depends_on names 'db', which is not declared; declared"):
        start_order(["api"], specs(api=("db",)))
    with pytest.raises(ConfigError, match="no app named 'nope'"):
        start_order(["nope"], specs(api=()))


def test_declared_dependencies_are_checked_when_parsed() -> None:
    with pytest.raises(ConfigError, match=r"^ini aegis_apps: api's depends_on names 'db'"):
        parse_apps("api command=x depends_on=db", "ini aegis_apps", None)
    assert parse_apps("a command=x\nb command=y depends_on=a", "ini", None)["b"].depends_on == ("a",)


def handle(**values: Any) -> Any:
    defaults = {"http_url": None, "port": None, "service_name": "s", "instance_id": "i"}
    return SimpleNamespace(**defaults | values)


def test_env_names_another_apps_handle_and_other_braces_stay() -> None:
    handles = {"orders": handle(http_url="http://127.0.0.1:9", port=9)}
    env = {"URL": "{orders.http_url}/x", "PORT": "{orders.port}", "JSON": '{"a": 1}', "X": "{other.port}"}
    assert render_env(env, handles, "audit") == {
        "URL": "http://127.0.0.1:9/x",
        "PORT": "9",
        "JSON": '{"a": 1}',
        "X": "{other.port}",
    }


def test_env_naming_what_a_handle_does_not_have_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"app 'audit': env U='\{orders.spec\}'.*one of: http_url, port"):
        render_env({"U": "{orders.spec}"}, {"orders": handle()}, "audit")
    with pytest.raises(ConfigError, match="orders has no http_url"):
        render_env({"U": "{orders.http_url}"}, {"orders": handle()}, "audit")


def test_a_third_party_server_is_a_dependency_of_the_first_wave() -> None:
    apps = specs(api=("redis", "db"), db=(), front=("api",))
    waves = start_order(["front"], apps, servers={"redis"})
    assert [sorted(wave) for wave in waves] == [["db", "redis"], ["api"], ["front"]]
    with pytest.raises(ConfigError, match=r"api's depends_on names 'cache', .*; servers: redis$"):
        start_order(["api"], specs(api=("cache",)), servers={"redis"})
    assert parse_apps("api command=x depends_on=redis", "ini", None, servers={"redis"})["api"].depends_on == (
        "redis",
    )
