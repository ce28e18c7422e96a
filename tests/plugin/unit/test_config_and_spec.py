"""Pure logic: settings resolution, spec validation, config rendering, the wait schedule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pytest_aegis.config import AegisConfig, ConfigError
from pytest_aegis.errors import SpecError, WaitTimeout
from pytest_aegis.natsd.conf import conf_value, render
from pytest_aegis.natsd.material import prepare
from pytest_aegis.natsd.spec import NatsSpec, build_spec
from pytest_aegis.waiting import async_wait_until, wait_until


def resolve(values: dict[str, str | None]) -> AegisConfig:
    return AegisConfig.resolve(lambda setting: values.get(setting.ini))


def test_defaults(monkeypatch):
    for var in ("AEGIS_BACKEND", "AEGIS_KEEP", "AEGIS_NATS_SERVER_BIN", "AEGIS_START_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    assert resolve({}) == AegisConfig(backend="auto", nats_bin=None, keep=False, start_timeout=20.0)


def test_cli_or_ini_beats_env(monkeypatch):
    monkeypatch.setenv("AEGIS_BACKEND", "docker")
    assert resolve({"aegis_backend": "local"}).backend == "local"
    assert resolve({}).backend == "docker"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"aegis_backend": "k8s"}, "invalid value 'k8s'; valid values: auto, local, docker, external"),
        ({"aegis_keep": "perhaps"}, "aegis_keep / env AEGIS_KEEP: invalid value 'perhaps'"),
        ({"aegis_start_timeout": "-3"}, "expected a positive number of seconds"),
    ],
)
def test_bad_values_name_the_setting_and_the_valid_values(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve(values)


def test_bare_marker_means_tls_userpass_jetstream():
    spec = build_spec({})
    assert (spec.auth, spec.tls, spec.mtls, spec.jetstream, spec.server_cert) == (
        "userpass",
        True,
        False,
        True,
        "valid",
    )


def test_specs_are_hashable_and_equal_by_value():
    perms = {"publish": {"deny": ["a.>"]}}
    assert build_spec({"permissions": perms}) == build_spec({"permissions": perms})
    assert hash(build_spec({"permissions": perms})) == hash(build_spec({"permissions": perms}))
    assert build_spec({"auth": "nkey"}) != build_spec({"auth": "jwt"})


def test_permission_shorthands():
    spec = build_spec({"permissions": {"publish": ["a.>"], "subscribe": {"deny": "b.>"}}})
    assert spec.permissions.to_config() == {"publish": {"allow": ["a.>"]}, "subscribe": {"deny": ["b.>"]}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auth": "ldap"}, "auth: Input should be 'none', 'userpass', 'token', 'nkey' or 'jwt'"),
        ({"server_cert": "self-signed"}, "server_cert: Input should be 'valid', 'expired'"),
        ({"tls": False, "mtls": True}, "mtls=True needs tls=True"),
        ({"tls": False, "server_cert": "expired"}, "server_cert='expired' needs tls=True"),
        (
            {"auth": "token", "permissions": {"publish": ["a"]}},
            "permissions and users need per-user identities",
        ),
        ({"users": {"aegis": {}}}, "user names must be unique and not 'aegis'"),
        (
            {"auth": "nkey", "users": {"bob": {"password": "x"}}},
            "a user password only applies to auth='userpass'",
        ),
        ({"permissions": {"pub": ["a"]}}, "permissions.pub: unknown keyword"),
        ({"permissions": {"publish": {"allow": ["has space"]}}}, "invalid subject 'has space'"),
        ({"users": [{"name": "bad name!"}]}, "users.0.name"),
        ({"colour": "red"}, "colour: unknown keyword"),
    ],
)
def test_bad_specs_say_what_is_wrong(kwargs, message):
    with pytest.raises(SpecError) as info:
        build_spec(kwargs)
    assert message in str(info.value)
    assert "valid keywords:" in str(info.value)


def test_labels():
    assert NatsSpec.plain().label == "plain+js"
    assert build_spec({"mtls": True, "auth": "jwt", "server_cert": "expired"}).label == "mtls+jwt+js[expired]"


def test_rendered_config_quotes_values_and_refuses_control_characters(tmp_path: Path):
    material = prepare(build_spec({"auth": "userpass", "tls": False}), tmp_path, None)
    text = render(material, name="n1", store_dir=tmp_path / "js")
    assert 'listen: "127.0.0.1:-1"' in text and 'http: "127.0.0.1:-1"' in text
    assert '"aegis"' in text and "jetstream" in text
    assert "tls" not in text
    with pytest.raises(ValueError, match="control characters"):
        conf_value("bad\nvalue")


def test_wait_until_returns_the_first_good_value():
    values = iter([None, ValueError("not yet"), 0, 7])

    def probe():
        value = next(values)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(probe, "seven", timeout=5, transient=(ValueError,)) == 7


def test_wait_until_times_out_with_the_last_value_and_the_hint():
    with pytest.raises(WaitTimeout, match=r"(?s)waiting for the answer.*last seen: 41.*hint: ask again"):
        wait_until(lambda: 41, "the answer", timeout=0.05, ok=lambda v: v == 42, hint="ask again")


def test_wait_until_does_not_swallow_unexpected_errors():
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, "division", timeout=1, transient=(ValueError,))


def test_async_wait_until_shares_the_schedule():
    async def main():
        calls = []

        async def probe():
            calls.append(1)
            return len(calls) >= 3

        assert await async_wait_until(probe, "three calls", timeout=5)
        return len(calls)

    assert asyncio.run(main()) == 3


def test_lame_duck_settings_are_rendered_and_checked_as_nats_server_checks_them(tmp_path: Path):
    spec = build_spec({"auth": "none", "tls": False, "lame_duck_duration": 30, "lame_duck_grace_period": 1.5})
    text = render(prepare(spec, tmp_path, None), name="n1", store_dir=tmp_path / "js")
    assert 'lame_duck_duration: "30000ms"' in text and 'lame_duck_grace_period: "1500ms"' in text
    plain = render(prepare(NatsSpec.plain(), tmp_path, None), name="n", store_dir=tmp_path / "s")
    assert "lame_duck_duration:" not in plain and "lame_duck_grace_period:" not in plain
    with pytest.raises(SpecError, match=r"lame_duck_duration: Input should be greater than or equal to 30"):
        build_spec({"lame_duck_duration": 3})
    with pytest.raises(SpecError, match=r"grace_period \(40 s\) must be below lame_duck_duration \(30 s\)"):
        build_spec({"lame_duck_duration": 30, "lame_duck_grace_period": 40})
    with pytest.raises(SpecError, match=r"grace_period \(120 s\) must be below lame_duck_duration \(120 s\)"):
        build_spec({"lame_duck_grace_period": 120})  # against nats-server's default duration


def test_sync_interval_is_rendered_into_the_jetstream_block_and_checked(tmp_path: Path):
    spec = build_spec({"auth": "none", "tls": False, "sync_interval": "always"})
    assert '  sync_interval: "always"\n' in render(
        prepare(spec, tmp_path, None), name="n1", store_dir=tmp_path / "js"
    )
    assert build_spec({"sync_interval": "250ms"}).sync_interval == "250ms"
    with pytest.raises(SpecError, match=r"sync_interval: String should match pattern .*\(got 'sometimes'\)"):
        build_spec({"sync_interval": "sometimes"})
    with pytest.raises(SpecError, match=r"sync_interval='always' needs jetstream=True"):
        build_spec({"sync_interval": "always", "jetstream": False})
