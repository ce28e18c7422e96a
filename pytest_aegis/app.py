"""The service under test as its own process: :class:`AppSpec` says how to run
it, :class:`AppProcess` runs it against a test's NATS server.

Not tied to our reference service: any command works.  The harness gives the
process the NATS server's coordinates as environment variables (the names
:meth:`NatsServer.env` produces, renamed through ``env_map`` if the app wants
others), waits for its ready line when it has one, then for it to answer its
health check, and keeps its output as a log for failure reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pytest_aegis.nats_connect import NatsConnectError, classify_lines
from pytest_aegis.nats_server import NatsServer
from pytest_aegis.process import ManagedProcess, ProcessBacked, ServerStartError
from pytest_aegis.session import SessionState

T = TypeVar("T")
REFERENCE_READY = r"^AEGIS-SERVICE READY (?P<json>\{.*\})$"


@dataclass(frozen=True)
class AppSpec:
    """How to run a service under test.

    ``command``: argv; ``health_subject``: where it answers health checks;
    ``ready_pattern``: a regex for the line it prints when ready (a ``json``
    group may carry ``instanceId`` / ``httpUrl``), or ``None`` to rely on the
    health check alone; ``env``: extra variables; ``env_map``: rename the
    harness's variables for your app, e.g. ``{"MYAPP_NATS_URL": "AEGIS_NATS_URL"}``.
    """

    command: tuple[str, ...] = (sys.executable, "-m", "aegis_service")
    health_subject: str = "health.check"
    ready_pattern: str | None = REFERENCE_READY
    env: Mapping[str, str] = field(default_factory=dict)
    env_map: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0

    @classmethod
    def from_settings(cls, command: str | None, health_subject: str | None, env_map: str | None) -> AppSpec:
        """Build from the ``aegis_app_*`` settings (strings as in ini files)."""
        spec = cls()
        if command:
            spec = replace(spec, command=tuple(shlex.split(command)), ready_pattern=None)
        if health_subject:
            spec = replace(spec, health_subject=health_subject)
        if env_map:
            spec = replace(spec, env_map=parse_env_map(env_map))
        return spec


def parse_env_map(text: str) -> dict[str, str]:
    """``"APP_URL=AEGIS_NATS_URL APP_USER=AEGIS_NATS_USER"`` (spaces, commas or newlines) -> dict."""
    mapping = {}
    for item in re.split(r"[\s,]+", text.strip()):
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"aegis_app_env: expected NAME=AEGIS_VARIABLE pairs, got {item!r}")
        mapping[name] = source
    return mapping


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop
    (on a short-lived thread with its own loop)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="aegis-run-sync")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


class AppRuntime(Protocol):
    """Where an instance of the service runs: a local process (:class:`ManagedProcess`) or what a
    backend provides (a container).  ``start`` returns once ``ready`` matched a line (or at once
    without one); the lines up to then are in ``startup_lines``."""

    startup_lines: list[str]
    log_path: Path

    @property
    def pid(self) -> int | None: ...
    @property
    def is_running(self) -> bool: ...
    def start(self, timeout: float = 10.0) -> None: ...
    def stop(self, timeout: float = 10.0) -> int | None: ...
    def kill(self) -> int | None: ...
    def tail(self, lines: int = 50) -> list[str]: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...


@dataclass(frozen=True)
class AppLaunch:
    """What a backend needs to run one instance: its spec, the harness's environment for it
    (without ``os.environ``), its ready predicate, where its log goes, the rootdir (for an image
    built from the project's Dockerfile)."""

    name: str
    spec: AppSpec
    env: Mapping[str, str]
    ready: Callable[[str], bool] | None
    log_path: Path
    session: SessionState
    keep: bool
    rootdir: Path | None = None


AppLauncher = Callable[[AppLaunch], AppRuntime]


def local_launcher(launch: AppLaunch) -> AppRuntime:
    """The service as a child process of pytest (every backend's default)."""
    return ManagedProcess(
        launch.name,
        launch.spec.command,
        ready=launch.ready,
        log_path=launch.log_path,
        session=launch.session,
        env={**os.environ, **launch.env},
        die_with_parent=not launch.keep,
        hint=f"command: {shlex.join(launch.spec.command)}; the app's environment is in AppProcess.env",
    )


def _refusal(app_lines: list[str], server_lines: list[str]) -> str | None:
    """Which refusal (``tls`` before ``auth`` before ``permissions``) the lines show, if any."""
    found = classify_lines([*app_lines, *server_lines])
    return next((reason for reason in ("tls", "auth", "permissions") if reason in found), None)


class _Exited(Exception):
    """The app's process ended while we waited for it to become healthy."""


class AppProcess(ProcessBacked[AppRuntime]):
    """One running instance of the service under test (a process, or a container when the
    backend provides a ``launcher``)."""

    def __init__(
        self,
        spec: AppSpec,
        nats: NatsServer,
        *,
        session: SessionState,
        service_name: str,
        instance_id: str | None = None,
        env: Mapping[str, str] | None = None,
        keep: bool = False,
        launcher: AppLauncher | None = None,
        rootdir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.nats = nats
        self.service_name = service_name
        self.instance_id = instance_id or secrets.token_hex(8)
        self.http_url: str | None = None
        self.ready_info: dict[str, Any] = {}
        self.name = f"app[{service_name}/{self.instance_id[:8]}]"
        self.env = self._environment(env or {})
        self._directory = session.new_dir(f"app-{service_name}")
        ready = re.compile(spec.ready_pattern) if spec.ready_pattern else None
        self._process = (launcher or local_launcher)(
            AppLaunch(
                name=self.name,
                spec=spec,
                env=self.env,
                ready=(lambda line: bool(ready.search(line))) if ready else None,
                log_path=self._directory / "app.log",
                session=session,
                keep=keep,
                rootdir=rootdir,
            )
        )

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        ours = self.nats.env() | {
            "AEGIS_SERVICE_NAME": self.service_name,
            "AEGIS_INSTANCE_ID": self.instance_id,
            "AEGIS_HEALTH_SUBJECT": self.spec.health_subject,
            "AEGIS_HTTP_BIND": "127.0.0.1:0",
            "PYTHONUNBUFFERED": "1",
        }
        renamed = {name: ours[source] for name, source in self.spec.env_map.items() if source in ours}
        return {**ours, **renamed, **self.spec.env, **extra}

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> AppProcess:
        """Spawn, wait for the ready line (if any) and for a healthy health check.

        Raises :class:`ServerStartError` within about ``spec.start_timeout``: if the service exits,
        never becomes healthy, or the harness's own probe connection is refused; ``refusal`` then
        says whether a server refused it (``tls``, ``auth``, ...), from the service's log and the
        NATS server's log lines of the attempt."""
        offset = self.nats.log_size()
        try:
            self._process.start(self.spec.start_timeout)
            self._read_ready_line()
            self._await_health()
        except ServerStartError as exc:
            raise self._explained(exc, offset) from None
        return self

    def _await_health(self) -> None:
        try:
            run_sync(self._wait_healthy)
        except _Exited:
            code = self._process.kill()
            raise ServerStartError(
                self.name,
                f"exited with code {code} before answering its health check",
                self._process.tail(40),
            ) from None
        except AssertionError as exc:
            self._process.kill()
            raise ServerStartError(
                self.name, f"never answered its health check: {exc}", self._process.tail(40)
            ) from None
        except NatsConnectError as exc:
            self._process.kill()
            raise ServerStartError(
                self.name,
                f"the harness's health probe could not connect: {exc}",
                self._process.tail(40),
                refusal=exc.reason,
            ) from None

    def _explained(self, error: ServerStartError, offset: int) -> ServerStartError:
        """``error`` with the NATS server's lines from the attempt and the refusal they show."""
        server_lines = self.nats.logs().encode()[offset:].decode(errors="replace").splitlines()
        refusal = error.refusal or _refusal(error.log_tail, server_lines)
        return ServerStartError(
            error.name,
            error.reason,
            error.log_tail,
            error.hint,
            refusal=refusal,
            server_lines=server_lines,
        )

    def _read_ready_line(self) -> None:
        if not self.spec.ready_pattern or not self._process.startup_lines:
            return
        match = re.search(self.spec.ready_pattern, self._process.startup_lines[-1])
        if match and "json" in match.groupdict():
            self.ready_info = json.loads(match.group("json"))
            self.http_url = self.ready_info.get("httpUrl", self.http_url)
            self.instance_id = self.ready_info.get("instanceId", self.instance_id)

    async def _wait_healthy(self) -> None:
        from pytest_aegis.assertions.service import assert_health_check
        from pytest_aegis.waiting import async_wait_until

        nc = await self.nats.connect()
        try:

            async def probe() -> bool:
                if not self._process.is_running:
                    raise _Exited  # not transient: stop waiting at once
                await assert_health_check(nc, self.spec.health_subject, service=self.service_name, within=0.5)
                return True

            await async_wait_until(
                probe,
                f"{self.name} to answer on {self.spec.health_subject}",
                timeout=self.spec.start_timeout,
                transient=(AssertionError,),
                interval=0.01,
                max_interval=0.2,
            )
        finally:
            await nc.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: deregisters, drains), then SIGKILL after ``timeout``."""
        return self._process.stop(timeout)

    def kill(self) -> int | None:
        """SIGKILL: a crash, no cleanup."""
        return self._process.kill()

    def restart(self) -> AppProcess:
        """Stop if running, start again with the same instance id and environment."""
        self._process.stop()
        return self.start()

    def __repr__(self) -> str:
        return f"<AppProcess {self.name} http={self.http_url} nats={self.nats.url}>"
