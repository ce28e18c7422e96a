"""The Docker engine found as the docker CLI finds it, with ``DOCKER_HOST`` unset: the current
context of the CLI's config (as Colima, Docker Desktop and Podman machine set one), else
``DOCKER_CONTEXT``'s; a context that names a dead socket, or no context at all, fails listing every
place looked at, even where the default socket has an engine.  Real engine (the sandbox's), real
context store (``$DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json``, the CLI's layout)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pytest_aegis.backends.docker.engine import Engine, find_engine
from pytest_aegis.errors import BackendUnavailable

pytestmark = pytest.mark.docker


@pytest.fixture
def engine_url() -> str:
    """The URL of the engine this run uses (found before the test changes the environment)."""
    try:
        Engine.connect().close()
    except BackendUnavailable as exc:
        reason = f"no Docker engine: {str(exc).splitlines()[0]}"
        if os.environ.get("AEGIS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{reason} (AEGIS_REQUIRE_DOCKER=1: this run must not skip the docker tests)")
        pytest.skip(reason)
    return find_engine().url


def cli_config(directory: Path, current: str | None, contexts: dict[str, str]) -> Path:
    """A docker CLI config directory: ``currentContext`` and a context store, as the CLI writes them."""
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"currentContext": current} if current else {}))
    for name, host in contexts.items():
        meta = directory / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        endpoint = {"Host": host, "SkipTLSVerify": False}
        (meta / "meta.json").write_text(
            json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}})
        )
    return directory


@pytest.fixture
def no_docker_host(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``DOCKER_HOST`` and ``DOCKER_CONTEXT`` unset for the test, and as they were after it (also
    when :meth:`Engine.connect` exported the context's engine as ``DOCKER_HOST``)."""
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_current_context_is_found_with_docker_host_unset(
    engine_url: str, no_docker_host: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = engine_url
    if url.startswith("unix://"):  # a path of its own, so the export below is the context's
        (tmp_path / "engine.sock").symlink_to(url.removeprefix("unix://"))
        url = f"unix://{tmp_path / 'engine.sock'}"
    config = cli_config(tmp_path / "cli", "sandbox", {"sandbox": url})
    no_docker_host.setenv("DOCKER_CONFIG", str(config))
    found = find_engine()
    assert (found.url, found.source) == (
        url,
        f"context 'sandbox' (currentContext in {config / 'config.json'})",
    )
    engine = Engine.connect()
    try:
        assert engine.client.ping() and engine.version
        assert os.environ["DOCKER_HOST"] == url, "testcontainers and compose get the same engine"
    finally:
        engine.close()


def test_docker_context_wins_over_the_current_one_and_a_dead_one_fails_naming_it(
    engine_url: str, no_docker_host: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead = f"unix://{tmp_path / 'gone.sock'}"
    config = cli_config(tmp_path / "cli", "sandbox", {"sandbox": engine_url, "colima": dead})
    no_docker_host.setenv("DOCKER_CONFIG", str(config))
    no_docker_host.setenv("DOCKER_CONTEXT", "colima")
    with pytest.raises(BackendUnavailable) as failure:
        Engine.connect()
    message = str(failure.value)
    assert f"no Docker engine answers at {dead} (from context 'colima' (DOCKER_CONTEXT))" in message
    assert "the socket does not exist" in message and "  - DOCKER_HOST: unset" in message


def test_a_context_missing_from_the_store_fails_listing_where_it_looked(
    engine_url: str, no_docker_host: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = cli_config(tmp_path / "cli", "desktop-linux", {})
    no_docker_host.setenv("DOCKER_CONFIG", str(config))
    with pytest.raises(BackendUnavailable) as failure:
        Engine.connect()
    message = str(failure.value)
    assert "from context 'desktop-linux' (currentContext in" in message
    assert f"not in the context store {config / 'contexts' / 'meta'}" in message
    assert "no such context" in message
