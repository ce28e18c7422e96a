"""Shared by the tests that drive whole inner pytest sessions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_aegis import NatsServer
from pytest_aegis.session import process_start_time
from pytest_aegis.waiting import wait_until


def run_inner(pytester: Any, *args: str) -> Any:
    """Run an isolated inner pytest (subprocess) that loads the plugin."""
    return pytester.runpytest_subprocess("-p", "pytest_aegis", "-p", "no:cacheprovider", *args, timeout=120)


def spawn_pytest(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "pytest_aegis", "-p", "no:cacheprovider", "-q",
         "-o", "asyncio_default_fixture_loop_scope=function", *args],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def refused(port: int) -> bool:
    """A TCP connect to 127.0.0.1:``port`` is refused (nothing listens)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie awaiting its reaper counts as gone)."""
    return process_start_time(pid) is None


def kill_9_hanging_session(test_file: str, env: dict[str, str], cwd: Path, pids_file: Path) -> dict[str, Any]:
    """Start an inner pytest on ``test_file`` (which writes ``pids_file`` and then
    blocks), wait for it to report, ``kill -9`` it, and return what it wrote."""
    victim = spawn_pytest([test_file], env, cwd)
    try:
        info: dict[str, Any] = wait_until(
            lambda: pids_file.exists() and json.loads(pids_file.read_text()),
            "the inner test to start",
            timeout=60,
            transient=(ValueError,),
        )
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    return info


def session_env(state: Path, pids_file: Path) -> dict[str, str]:
    return {**os.environ, "AEGIS_STATE_DIR": str(state), "PIDS_FILE": str(pids_file)}


def external_env(
    monkeypatch: pytest.MonkeyPatch,
    server: NatsServer,
    *,
    urls: str | Sequence[str] | None = None,
    **overrides: str | None,
) -> None:
    """Point the inner session at ``urls`` (one URL or a list, joined with commas; ``server``'s own
    by default) through AEGIS_EXTERNAL_*, with ``server``'s credentials and CA (secrets stay off
    argv).  ``overrides`` replace those variables, a ``None`` unsets one."""
    if urls is None:
        urls = server.url
    creds = server.credentials
    values: dict[str, str | None] = {
        "AEGIS_BACKEND": "external",
        "AEGIS_EXTERNAL_NATS_URL": urls if isinstance(urls, str) else ",".join(urls),
        "AEGIS_EXTERNAL_NATS_USER": creds["user"],
        "AEGIS_EXTERNAL_NATS_PASSWORD": creds["password"],
        "AEGIS_EXTERNAL_NATS_CA": str(server.ca_file),
    } | overrides
    for key, value in values.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
