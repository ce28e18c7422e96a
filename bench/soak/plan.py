"""What each soak run is: its backend, and the pytest command line and environment it runs with.

The one place the soak's command lines are defined: a local run is ``make test``'s (``-n 2``,
``--aegis-require``), a docker run ``make test-docker``'s plus ``--aegis-docker-network`` (host
networking, as CI passes it), every run with CI's environment (``.ci/run``).  Pure: no I/O.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "docker")
#: ``-n 2``: the xdist workers of ``make test`` and ``make test-docker``.
WORKERS = 2
#: What ``.ci/run`` exports before its test steps; a variable already in the environment wins.
CI_ENV: Mapping[str, str] = {
    "AEGIS_REQUIRE_DOCKER": "1",  # a docker-marked test that cannot run fails, never skips
    "TESTCONTAINERS_RYUK_DISABLED": "true",  # the sandbox has no Ryuk image
    "TC_HOST": "127.0.0.1",  # host networking only
    "AEGIS_REQUIRE_FUSE": "1",  # the power-loss tests must not skip
}


def parse_backends(text: str) -> tuple[str, ...]:
    """``"local,docker"`` -> ``("local", "docker")``; raises :class:`ValueError` naming the valid ones."""
    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in BACKENDS]
    if not text.strip() or unknown:
        named = ", ".join(map(repr, unknown or [text]))
        raise ValueError(f"unknown backend {named}; valid: {', '.join(BACKENDS)} (comma-separated)")
    return names


def backend_of(index: int, backends: Sequence[str]) -> str:
    """Run ``index`` (from 0) takes the backends in turn: local, docker, local, ... by default."""
    return backends[index % len(backends)]


@dataclass(frozen=True)
class Settings:
    """What every run's command line shares."""

    python: str
    require: str | None = None  # --aegis-require (make soak passes the Makefile's REQUIRE)
    docker_network: str | None = "host"  # --aegis-docker-network on docker runs; None: not passed
    extra: tuple[str, ...] = ()  # further pytest arguments (paths, -k, -x, ...), last


def pytest_command(settings: Settings, backend: str, seed: int, junit_xml: Path) -> list[str]:
    """The pytest command line of one run."""
    argv = [settings.python, "-m", "pytest", "-n", str(WORKERS)]
    if backend == "docker":
        argv.append("--aegis-backend=docker")
    if settings.require:
        argv.append(f"--aegis-require={settings.require}")
    if backend == "docker" and settings.docker_network:
        argv.append(f"--aegis-docker-network={settings.docker_network}")
    # xunit1: each <testcase> names its file, so the report's test ids are pytest's node ids.
    argv += ["-p", "randomly", f"--randomly-seed={seed}", f"--junitxml={junit_xml}"]
    argv += ["-o", "junit_family=xunit1", *settings.extra]
    return argv


def run_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of every run: CI's variables under ``environ``'s."""
    return {**CI_ENV, **environ}


def env_prefix(environ: Mapping[str, str]) -> str:
    """CI's variables as ``environ`` gives them, as a shell prefix for a command line to replay."""
    return " ".join(f"{name}={shlex.quote(environ[name])}" for name in CI_ENV if name in environ)
