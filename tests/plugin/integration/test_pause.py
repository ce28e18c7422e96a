"""pause() / resume() on real servers (local: SIGSTOP/SIGCONT of the server and its children;
docker: the engine's pause): a paused server keeps its connections and answers nothing, a resumed
one serves the same clients again, and stop/kill/restart and the session's cleanup work on a paused
server."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import nats.errors
import psycopg
import pytest
from support import gone, kill_9_hanging_session, session_env, spawn_pytest

from pytest_aegis import NatsConnectError
from pytest_aegis.harness import get_harness
from pytest_aegis.waiting import wait_until


async def _echo(nc) -> None:
    async def respond(msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("echo", cb=respond)
    await nc.flush()


def stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def logged_since(server, offset: int) -> str:
    """What ``server`` logged after ``offset`` (a ``log_size()``): one action's lines."""
    return server.logs().encode()[offset:].decode(errors="replace")


def tree(pid: int) -> list[int]:
    """``pid`` and its children (a postmaster's helpers and backends: each in a session of its own)."""
    children = [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]
    return [pid, *children]


# -- NATS ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_paused_nats_server_answers_nothing_and_the_same_client_works_after_resume(
    nats_server_factory,
):
    server = nats_server_factory(auth="userpass", tls=True)
    nc = await server.connect()
    try:
        await _echo(nc)
        assert (await nc.request("echo", b"before", timeout=2)).data == b"before"

        server.pause()
        assert server.is_paused and server.is_running
        with pytest.raises(nats.errors.TimeoutError):  # the request's own timeout: nothing else raises it
            await nc.request("echo", b"paused", timeout=0.5)
        with pytest.raises(NatsConnectError) as refused:
            await server.connect(deadline=1.0)
        # Each failure came at its own deadline: the connect's error names the 1 s it was given (not
        # the default deadline, the start timeout), and nothing settled it before (not a refusal, not
        # nats-py giving up); and both came while the server was still paused.
        assert refused.value.reason == "timeout", refused.value
        assert "within 1s (timeout)" in str(refused.value), refused.value
        assert server.is_paused and server.is_running
        assert nc.is_connected, "a pause keeps the connection open: nothing noticed it"

        server.resume()
        assert not server.is_paused
        assert (await nc.request("echo", b"after", timeout=5)).data == b"after"
        other = await server.connect(deadline=5)
        await other.close()
    finally:
        if server.is_paused:  # a failed assertion: the client's close must not wait on a frozen server
            server.resume()
        await nc.close()


@pytest.mark.asyncio
async def test_paused_resumes_the_nats_server_however_the_block_ends(nats_server_factory):
    server = nats_server_factory(auth="token", tls=False)
    nc = await server.connect()
    try:
        await _echo(nc)
        with pytest.raises(nats.errors.TimeoutError), server.paused():
            assert server.is_paused
            await nc.request("echo", b"x", timeout=0.3)
        assert not server.is_paused
        assert (await nc.request("echo", b"again", timeout=5)).data == b"again"
    finally:
        await nc.close()


def test_stop_kill_and_restart_of_a_paused_nats_server(nats_server_factory):
    server = nats_server_factory(auth="none", tls=False)
    server.pause()
    since = server.log_size()
    server.stop()
    assert not server.is_running and not server.is_paused
    # Resumed, not waited on for SIGKILL: a stopped process handles no SIGTERM, so only a server
    # that runs again logs its shutdown; the SIGKILL after stop()'s timeout ends it without a line.
    shutdown = logged_since(server, since)
    assert 'Trapped "terminated" signal' in shutdown and "Server Exiting" in shutdown, (
        f"stop() must be graceful on a paused server too; it logged: {shutdown!r}"
    )

    server.restart()
    server.pause()
    server.kill()
    assert not server.is_running and not server.is_paused

    server.restart()
    server.pause()
    server.restart()  # same port, running and answering
    assert server.is_running and not server.is_paused

    async def ping() -> None:
        nc = await server.connect(deadline=5)
        await nc.close()

    asyncio.run(ping())


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_server_factory):
    server = postgres_server_factory()
    yield server
    if server.is_paused:  # a failed assertion must not leave the next test a frozen server
        server.resume()


def test_a_paused_postgres_answers_nothing_and_the_same_connection_works_after_resume(pg):
    with psycopg.connect(pg.dsn, autocommit=True, connect_timeout=10) as conn, ThreadPoolExecutor(1) as pool:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        pg.pause()
        try:
            assert pg.is_paused and pg.is_running
            # The login fails at its own connect_timeout (libpq's "timeout expired", not a refusal
            # or a dropped connection), while the server is still paused.
            with pytest.raises(psycopg.OperationalError, match="timeout expired"):
                psycopg.connect(pg.dsn, connect_timeout=2).close()
            assert pg.is_paused and pg.is_running
            pending = pool.submit(lambda: conn.execute("SELECT 2").fetchone())
            done, _ = wait([pending], timeout=1.0)
            assert not done, "a paused server answered a query"
        finally:
            pg.resume()  # else the pool's exit would wait forever for the query
        assert not pg.is_paused
        assert pending.result(timeout=10) == (2,), "the query sent while paused is answered after resume"
        assert conn.execute("SELECT 3").fetchone() == (3,)
        with psycopg.connect(pg.dsn, connect_timeout=5) as fresh:
            assert fresh.execute("SELECT 4").fetchone() == (4,)


def test_a_statement_running_when_postgres_is_paused_hits_its_statement_timeout(pg):
    """The pause is wall-clock time to the server: a statement that would have ended well within its
    timeout is cancelled by it once the server runs again."""
    with psycopg.connect(pg.dsn, autocommit=True, connect_timeout=10) as conn, ThreadPoolExecutor(1) as pool:
        conn.execute("SET statement_timeout = '1500ms'")
        backend = conn.info.backend_pid
        running = pool.submit(lambda: conn.execute("SELECT pg_sleep(1)").fetchone())
        with psycopg.connect(pg.dsn, autocommit=True, connect_timeout=10) as observer:
            wait_until(
                lambda: observer.execute(
                    "SELECT state FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone(),
                "the statement to run",
                timeout=5,
                ok=lambda row: row == ("active",),
            )
        with pg.paused():
            time.sleep(2)  # the pause itself: longer than the statement's timeout
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            running.result(timeout=10)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stop_kill_and_restart_of_a_paused_postgres(pg):
    pg.pause()
    since = pg.log_size()
    pg.stop()
    assert not pg.is_running and not pg.is_paused
    # Resumed, not waited on for SIGKILL: a stopped postmaster handles no SIGINT, so only one that
    # runs again shuts down fast and says so; the SIGKILL after stop()'s timeout ends it without a line.
    shutdown = logged_since(pg, since)
    assert "received fast shutdown request" in shutdown and "database system is shut down" in shutdown, (
        f"stop() must be graceful on a paused server too; it logged: {shutdown!r}"
    )

    pg.restart()
    pg.pause()
    pg.kill()
    assert not pg.is_running and not pg.is_paused

    pg.restart()
    pg.pause()
    pg.restart()
    assert pg.is_running and not pg.is_paused
    with psycopg.connect(pg.dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.aegis_backends("local", reason="reads the postmaster's processes in /proc")
def test_pause_stops_every_postgres_process_and_kill_leaves_none(pg):
    with psycopg.connect(pg.dsn, connect_timeout=10):  # a backend of its own, a child too
        processes = tree(pg.pid)
        assert len(processes) > 2, "a postmaster has helpers and backends"
        pg.pause()
        states = {pid: stat(pid)[0] for pid in processes}
        assert set(states.values()) == {"T"}, states
        pg.kill()
    wait_until(
        lambda: all(gone(pid) for pid in processes),
        "every process of the killed postmaster to exit",
        timeout=10,
        hint="a stopped backend cannot notice its postmaster died until continued",
    )


# -- session cleanup ------------------------------------------------------------------------------

LEFT_PAUSED = """
import atexit, json, os, pathlib

_LOGS = {}  # name: a local server's log, held open: the session's cleanup deletes the file

def _tree(pid):
    tasks = pathlib.Path(f"/proc/{pid}/task").iterdir()
    return [pid, *(int(c) for task in tasks for c in (task / "children").read_text().split())]

def _record(name, server):
    path = pathlib.Path(os.environ["PIDS_FILE"])
    info = json.loads(path.read_text()) if path.exists() else {}
    runs = getattr(server, "runtime", server)  # a NATS server's process or container; a postmaster
    container = getattr(runs, "container_name", None)  # docker
    info[name] = {"pids": [] if container else _tree(server.pid), "container": container}
    path.write_text(json.dumps(info))
    if container is None:
        _LOGS[name] = open(runs.log_path, "rb")

@atexit.register
def _save_logs():  # at the process's exit, after the session's cleanup: each log to its end
    logs = {name: log.read().decode(errors="replace") for name, log in _LOGS.items()}
    pathlib.Path(os.environ["LOGS_FILE"]).write_text(json.dumps(logs))

def test_uses_a_database(postgres_db):
    with postgres_db.connect() as conn:
        conn.execute("SELECT 1")

def test_leaves_every_server_paused(postgres_server, postgres_server_factory, nats_server_factory):
    servers = {"shared-pg": postgres_server, "own-pg": postgres_server_factory(),
               "nats": nats_server_factory(auth="userpass", tls=True)}
    for name, server in servers.items():
        _record(name, server)
        server.pause()
        assert server.is_paused
"""


def _backend_args(config: pytest.Config) -> list[str]:
    harness = get_harness(config)
    args = [f"--aegis-backend={harness.backend.name}"]
    if harness.backend.name == "docker":
        args.append(f"--aegis-docker-network={harness.config.docker_network}")
    return args


def _containers_left(names: list[str]) -> list[str]:
    from pytest_aegis.backends.docker.engine import Engine

    engine = Engine.connect()
    try:
        return [c.name for c in engine.client.containers.list(all=True) if c.name in names]
    finally:
        engine.close()


def test_session_cleanup_of_servers_left_paused_does_not_hang_and_leaves_nothing(
    inner, tmp_path, monkeypatch, pytestconfig
):
    pids_file, logs_file = tmp_path / "pids.json", tmp_path / "logs.json"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    monkeypatch.setenv("LOGS_FILE", str(logs_file))
    inner.makepyfile(test_left_paused=LEFT_PAUSED)
    result = inner.runpytest_subprocess(
        "-p", "pytest_aegis", "-p", "no:cacheprovider", "-p", "no:randomly", *_backend_args(pytestconfig),
        timeout=90,
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    servers = json.loads(pids_file.read_text())
    assert set(servers) == {"shared-pg", "own-pg", "nats"}
    containers = [info["container"] for info in servers.values() if info["container"]]
    if containers:
        assert len(containers) == 3 and _containers_left(containers) == [], servers
    else:
        pids = [pid for info in servers.values() for pid in info["pids"]]
        assert len(pids) > 3, servers
        wait_until(lambda: all(gone(pid) for pid in pids), "every server process to exit", timeout=10)
        # The cleanup resumed each server before stopping it, rather than waiting on it: a stopped
        # process handles no SIGTERM or SIGINT, so only a resumed one logs its shutdown (the SIGKILL
        # after stop()'s timeout ends it without a line).
        logs = json.loads(logs_file.read_text())
        assert set(logs) == set(servers), logs.keys()
        assert "Server Exiting" in logs["nats"], logs["nats"][-2000:]
        for name in ("shared-pg", "own-pg"):
            assert "database system is shut down" in logs[name], logs[name][-2000:]


PAUSED_AND_HANGING = textwrap.dedent("""
    import json, os, pathlib, threading

    def test_hangs_with_its_server_paused(postgres_server_factory):
        server = postgres_server_factory()
        tasks = pathlib.Path(f"/proc/{server.pid}/task").iterdir()
        children = [int(c) for task in tasks for c in (task / "children").read_text().split()]
        server.pause()
        info = {"postmaster": server.pid, "children": children, "dir": str(server.directory)}
        pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps(info))
        threading.Event().wait()  # until killed
""")


@pytest.mark.aegis_backends("local", reason="a killed session's local postmaster and its children")
def test_kill_9_of_pytest_with_a_paused_postmaster_the_next_session_kills_its_stopped_children(tmp_path):
    pids_file = tmp_path / "pids.json"
    (tmp_path / "test_hang.py").write_text(PAUSED_AND_HANGING)
    (tmp_path / "test_next.py").write_text("def test_next(postgres_server):\n    pass\n")
    env = session_env(tmp_path / "state", pids_file)

    info = kill_9_hanging_session("test_hang.py", env, tmp_path, pids_file)
    wait_until(lambda: gone(info["postmaster"]), "the killed session's postmaster to die", timeout=10)
    assert info["children"] and not any(gone(pid) for pid in info["children"]), (
        "stopped, the postmaster's children cannot notice it died"
    )

    follower = spawn_pytest(["test_next.py"], env, tmp_path)
    assert follower.wait(timeout=120) == 0
    wait_until(
        lambda: all(gone(pid) for pid in info["children"]),
        "the next session to kill the dead session's stopped postgres processes",
        timeout=10,
    )
    assert not Path(info["dir"]).exists()
