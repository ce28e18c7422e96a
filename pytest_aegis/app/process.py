"""The service under test as a test sees it: :class:`AppProcess`, one running instance wired by
environment variables to a test's NATS server, healthy before the test gets it."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_aegis.aio import run_sync
from pytest_aegis.app.runtime import AppLaunch, AppLauncher, AppRuntime
from pytest_aegis.app.spec import AppSpec
from pytest_aegis.errors import NatsConnectError, ServerStartError
from pytest_aegis.natsd.connect import classify_lines
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.process import ProcessBacked
from pytest_aegis.session import SessionState


def _refusal(app_lines: list[str], server_lines: list[str]) -> str | None:
    """Which refusal (``tls`` before ``auth`` before ``permissions``) the lines show, if any."""
    found = classify_lines([*app_lines, *server_lines])
    return next((reason for reason in ("tls", "auth", "permissions") if reason in found), None)


class _Exited(Exception):
    """The app's process ended while we waited for it to become healthy."""


class AppProcess(ProcessBacked[AppRuntime]):
    """One running instance of the service under test: a child process of pytest, or what the
    ``launcher`` (the backend's :meth:`~pytest_aegis.backends.base.Backend.app_launcher`) runs it
    in, e.g. a container."""

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
        if launcher is None:  # a child process of pytest, every backend's default
            from pytest_aegis.backends.local.app import local_launcher

            launcher = local_launcher
        self._process = launcher(
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
