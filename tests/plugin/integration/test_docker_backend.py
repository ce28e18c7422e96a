"""The docker backend's own behaviour: labels, cleanup (also after ``kill -9``), errors, selection,
report header and logs, the service under test in a container.

Runs only where a Docker engine answers (skips saying why; ``AEGIS_REQUIRE_DOCKER=1`` turns the
skip into a failure).  Containers use host networking (the only mode some engines offer); the
suites that run unchanged on this backend are the security matrix, NATS lifecycle, PostgreSQL and
service suites with ``--aegis-backend=docker``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import textwrap
from pathlib import Path

import pytest
from support import kill_9_hanging_session, run_inner, session_env, spawn_pytest

from pytest_aegis.backends import select_backend
from pytest_aegis.backends.local.backend import LocalBackend
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable
from pytest_aegis.natsd.material import prepare
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parents[3]
DOCKER = AegisConfig(backend="docker", docker_network="host")
DOCKER_ENV = {"AEGIS_BACKEND": "docker", "AEGIS_DOCKER_NETWORK": "host"}


@pytest.fixture(scope="module")
def engine():
    try:
        from pytest_aegis.backends.docker.engine import Engine

        found = Engine.connect()
    except BackendUnavailable as exc:
        reason = f"no Docker engine: {str(exc).splitlines()[0]}"
        if os.environ.get("AEGIS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{reason} (AEGIS_REQUIRE_DOCKER=1: this run must not skip the docker tests)")
        pytest.skip(reason)
    yield found
    found.close()


def containers_of(engine, session_name: str) -> list:
    return engine.client.containers.list(all=True, filters={"label": f"pytest-aegis.session={session_name}"})


def test_every_container_is_labelled_with_its_session_and_removed_at_close(engine, tmp_path):
    from pytest_aegis.backends.docker.backend import DockerBackend

    session = SessionState(root=tmp_path / "state")
    backend = DockerBackend(DOCKER, session, engine=engine)
    try:
        material = prepare(NatsSpec(auth="token", tls=False), session.new_dir("m"), None)
        nats = backend.start_nats(material, name="labelled", directory=session.new_dir("nats"))
        pg = backend.start_postgres(name="labelled")
        found = {c.labels["pytest-aegis.role"]: c for c in containers_of(engine, session.dir.name)}
        assert set(found) == {"nats", "postgres"}
        for container in found.values():
            assert container.status == "running"
            assert container.labels["pytest-aegis.root"] == str(session.root)
            assert container.labels["pytest-aegis.pid"] == str(os.getpid())
            assert container.labels["pytest-aegis.host"]
        assert nats.pid and pg.pid and nats.port != pg.port
    finally:
        backend.close()
        name = session.dir.name
        session.close()
    assert containers_of(engine, name) == [], "close() must remove every container of the session"


HANGING_TEST = textwrap.dedent("""
    import json, os, pathlib, threading

    def test_hangs(nats_server, postgres_server):
        info = {"pytest": os.getpid(), "nats": nats_server.pid, "postgres": postgres_server.pid,
                "containers": [nats_server._runtime._run.container_name, postgres_server.container_name]}
        pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps(info))
        threading.Event().wait()  # until killed
""")


def test_kill_9_of_pytest_leaves_containers_that_the_next_session_removes(engine, tmp_path):
    pids_file = tmp_path / "pids.json"
    (tmp_path / "test_hang.py").write_text(HANGING_TEST)
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    env = {**session_env(tmp_path / "state", pids_file), **DOCKER_ENV}

    info = kill_9_hanging_session("test_hang.py", env, tmp_path, pids_file)
    names = info["containers"]
    try:
        running = {c.name for c in engine.client.containers.list(filters={"name": names})}
        assert set(names) <= running, "containers do not die with pytest: the next session must remove them"

        follower = spawn_pytest(["test_ok.py"], {**os.environ, "AEGIS_STATE_DIR": str(tmp_path / "state")},
                                tmp_path)  # fmt: skip
        assert follower.wait(timeout=120) == 0
        left = [c.name for c in engine.client.containers.list(all=True, filters={"name": names})]
        assert left == [], "the next session's sweep should have removed the dead session's containers"
    finally:
        for name in names:
            for container in engine.client.containers.list(all=True, filters={"name": name}):
                container.remove(force=True)


def test_the_sweep_leaves_a_live_sessions_containers_alone(engine, tmp_path):
    from pytest_aegis.backends.docker.backend import DockerBackend
    from pytest_aegis.backends.docker.sweep import sweep_containers

    session = SessionState(root=tmp_path / "state")
    backend = DockerBackend(DOCKER, session, engine=engine)
    try:
        material = prepare(NatsSpec(auth="none", tls=False), session.new_dir("m"), None)
        backend.start_nats(material, name="alive", directory=session.new_dir("nats"))
        assert not any(session.dir.name in entry for entry in sweep_containers(engine.client))
        assert len(containers_of(engine, session.dir.name)) == 1
    finally:
        backend.close()
        session.close()


def test_header_names_images_and_engine_and_a_failing_test_gets_the_container_log(inner, engine, monkeypatch):
    for key, value in DOCKER_ENV.items():
        monkeypatch.setenv(key, value)
    inner.makepyfile("""
        def test_fails(nats_server):
            assert nats_server.version == "no such version"
    """)
    result = run_inner(inner)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            # the engine's product (Docker or Podman), version, address and where that came from
            f"aegis: backend docker (engine {engine.version} at {engine.endpoint}, network host; "
            "nats image nats:2.11)*",
            f"aegis: postgres image postgres:16 on engine {engine.version}",
            "*aegis: plain-js-1 log*",
            "*Server is ready*",
        ]
    )


def test_bridge_without_a_bridge_network_says_to_use_host(engine, tmp_path):
    from pytest_aegis.backends.docker.backend import DockerBackend

    if engine.has_network("bridge"):
        pytest.skip("this engine has a bridge network")
    session = SessionState(root=tmp_path)
    try:
        with pytest.raises(BackendUnavailable, match=r"no 'bridge' network.*--aegis-docker-network=host"):
            DockerBackend(dataclasses.replace(DOCKER, docker_network="bridge"), session, engine=engine)
    finally:
        session.close()


def test_auto_is_local_when_its_binaries_are_found_else_docker_else_says_what_is_missing(
    engine, tmp_path, monkeypatch
):
    from pytest_aegis.backends.docker.backend import DockerBackend

    session = SessionState(root=tmp_path)
    try:
        auto = AegisConfig(backend="auto", docker_network="host")
        assert isinstance(select_backend(auto, session), LocalBackend)

        # A wrong setting is an error, not a reason to run elsewhere.
        with pytest.raises(BackendMisconfigured, match=r"nats-server not found: .* is .*no-nats-server"):
            select_backend(dataclasses.replace(auto, nats_bin=tmp_path / "no-nats-server"), session)

        # No nats-server anywhere (none beside the interpreter, none on PATH): docker.
        monkeypatch.delenv("AEGIS_NATS_SERVER_BIN", raising=False)
        monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        fallback = select_backend(auto, session)
        assert isinstance(fallback, DockerBackend)
        fallback.close()

        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
        with pytest.raises(BackendUnavailable) as failure:
            select_backend(auto, session)
        message = str(failure.value)
        assert "found neither backend" in message
        assert "local: nats-server not found" in message
        assert f"docker: no Docker engine answers at unix://{tmp_path}/no-engine.sock" in message
        assert "DOCKER_HOST" in message and "start an engine" in message
    finally:
        session.close()


def test_the_service_runs_in_a_container_with_its_files_copied_in(inner, engine, monkeypatch):
    from pytest_aegis.backends.docker.app import build_app_image

    image = build_app_image(engine, ROOT, network="host")  # the layer cache makes this cheap after once
    for key, value in {**DOCKER_ENV, "AEGIS_DOCKER_APP_IMAGE": image}.items():
        monkeypatch.setenv(key, value)
    inner.makepyfile("""
        import pathlib, docker, pytest
        from pytest_aegis import assert_health_check
        from pytest_aegis.harness import get_harness

        @pytest.mark.asyncio
        @pytest.mark.nats_secure(auth="jwt", mtls=True)
        async def test_app(request, aegis_app, nats_client):
            session = get_harness(request.config).session.dir.name
            client = docker.from_env()
            try:
                labels = [f"pytest-aegis.session={session}", "pytest-aegis.role=app"]
                (container,) = client.containers.list(filters={"label": labels})
                pathlib.Path("app-container.txt").write_text(container.name)
                assert container.attrs["State"]["Pid"] == aegis_app.pid
                # the file paths of the environment are valid inside the container, for its user
                for key in ("AEGIS_NATS_CREDS_FILE", "AEGIS_NATS_TLS_CA", "AEGIS_NATS_TLS_KEY"):
                    code, _ = container.exec_run(["python", "-c", f"open({aegis_app.env[key]!r}).read()"])
                    assert code == 0, key
            finally:
                client.close()
            await assert_health_check(nats_client, "health.check", service=aegis_app.service_name)
            aegis_app.kill()
            assert not aegis_app.is_running
            aegis_app.restart()
            await assert_health_check(nats_client, "health.check", service=aegis_app.service_name)
    """)
    result = run_inner(inner)
    result.assert_outcomes(passed=1)
    name = (inner.path / "app-container.txt").read_text()
    assert not engine.client.containers.list(all=True, filters={"name": name}), "the session removes it"


def test_a_measured_session_measures_the_service_in_its_container_when_the_image_has_coverage(
    inner, engine, monkeypatch
):
    import inspect
    import json

    from aegis_service.adapters.nats import tls

    tag = "pytest-aegis-app:with-coverage"
    engine.client.images.build(
        path=str(ROOT), tag=tag, rm=True, network_mode="host", buildargs={"WITH_COVERAGE": "1"}
    )
    for key, value in {**DOCKER_ENV, "AEGIS_DOCKER_APP_IMAGE": tag}.items():
        monkeypatch.setenv(key, value)
    inner.makepyfile("""
        import pytest
        from pytest_aegis import assert_health_check

        @pytest.mark.asyncio
        @pytest.mark.nats_secure(mtls=True)
        async def test_app(aegis_app, nats_client):
            await assert_health_check(nats_client, service=aegis_app.service_name)
    """)
    report = inner.path / "coverage.json"
    result = run_inner(inner, "--cov=aegis_service", f"--cov-report=json:{report}")
    result.assert_outcomes(passed=1)
    assert "wrote no coverage data" not in result.stdout.str()
    files = json.loads(report.read_text())["files"]
    # Recorded in the container under the image's paths, reported under this machine's.
    measured = next(data for path, data in files.items() if path.endswith("adapters/nats/tls.py"))
    source, first = inspect.getsourcelines(tls.build_ssl_context)
    assert len(set(measured["executed_lines"]) & set(range(first, first + len(source)))) >= 10


def test_an_image_without_coverage_is_named_at_the_end_of_a_measured_session(inner, engine, monkeypatch):
    from pytest_aegis.backends.docker.app import build_app_image

    image = build_app_image(engine, ROOT, network="host")
    for key, value in {**DOCKER_ENV, "AEGIS_DOCKER_APP_IMAGE": image}.items():
        monkeypatch.setenv(key, value)
    inner.makepyfile("def test_app(aegis_app):\n    pass\n")
    result = run_inner(inner, "--cov=aegis_service", "--cov-report=")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"aegis: coverage: the service's containers of image {image} wrote no coverage data*"]
    )


def test_an_app_that_names_its_own_image_runs_in_it(inner, engine, monkeypatch, tmp_path):
    """Not the rootdir's Dockerfile nor --aegis-docker-app-image: the image the spec names (a user's
    second program), with the health contract of that program."""
    context = tmp_path / "echo-image"
    context.mkdir()
    (context / "tcp_app.py").write_text((ROOT / "tests/plugin/integration/programs/tcp_app.py").read_text())
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY tcp_app.py /\nCMD ["python", "/tcp_app.py"]\n'
    )
    tag = "pytest-aegis-test-echo:1"
    engine.client.images.build(path=str(context), tag=tag, rm=True, network_mode="host")
    for key, value in DOCKER_ENV.items():
        monkeypatch.setenv(key, value)
    inner.makepyfile(f"""
        import socket
        import docker
        from pytest_aegis import AppSpec, TcpConnect
        from pytest_aegis.harness import get_harness

        ECHO = AppSpec(name="echo", image={tag!r}, health=TcpConnect())

        def test_echo(request, aegis_app_factory):
            echo = aegis_app_factory(spec=ECHO)
            session = get_harness(request.config).session.dir.name
            client = docker.from_env()
            try:
                labels = [f"pytest-aegis.session={{session}}", "pytest-aegis.role=app"]
                (container,) = client.containers.list(filters={{"label": labels}})
                assert container.image.id == client.images.get({tag!r}).id  # Podman: localhost/...
            finally:
                client.close()
            with socket.create_connection(("127.0.0.1", echo.port), timeout=5) as sock:
                sock.sendall(b"ping\\n")
                assert sock.makefile("rb").readline() == b"ping\\n"
    """)
    run_inner(inner).assert_outcomes(passed=1)


def test_a_third_party_server_runs_in_a_labelled_container_removed_at_close(engine, tmp_path):
    from pytest_aegis.backends.docker.backend import DockerBackend
    from pytest_aegis.thirdparty.presets import REDIS
    from pytest_aegis.thirdparty.server import ThirdPartyServer

    session = SessionState(root=tmp_path / "state")
    backend = DockerBackend(DOCKER, session, engine=engine)
    try:
        server = ThirdPartyServer(REDIS, backend.server_runtime, session=session).start()
        (container,) = containers_of(engine, session.dir.name)
        assert container.labels["pytest-aegis.role"] == "server"
        assert container.image.id == engine.client.images.get("redis:7").id  # tags differ on Podman
        assert container.attrs["State"]["Pid"] == server.pid
        assert server.health_reply == {"port": server.port}  # it answered PING on its leased port
    finally:
        backend.close()
        name = session.dir.name
        session.close()
    assert containers_of(engine, name) == [], "close() must remove the server's container too"
