"""The service under test as a test sees it: :class:`AppProcess`, one running instance wired by
environment variables to a test's NATS server, healthy before the test gets it."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_aegis.aio import run_sync
from pytest_aegis.app.health import ServicePing
from pytest_aegis.app.readiness import (
    Exited,
    HealthRefused,
    refusal,
    wait_healthy,
    without_ports,
)
from pytest_aegis.app.runtime import AppLaunch, AppLauncher, AppRuntime
from pytest_aegis.app.spec import AppSpec
from pytest_aegis.config import setting
from pytest_aegis.errors import NatsConnectError, ServerStartError
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.ports import LOOPBACK, lease_port, release_port
from pytest_aegis.process import ProcessBacked
from pytest_aegis.session import SessionState
from pytest_aegis.waiting import wait_until

#: How long a service whose server refused the harness's probe too may take to exit by itself
#: (it meets the same refusal), so that its own log says why.
PROBE_REFUSED_GRACE = 2.0


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
        database_url: str | None = None,
    ) -> None:
        self.spec = spec
        self.nats = nats
        self.service_name = service_name
        self.instance_id = instance_id or secrets.token_hex(8)
        #: Its port (``AEGIS_HTTP_BIND`` / ``AEGIS_HTTP_PORT``) when its health contract probes one:
        #: leased for the instance's lifetime, so that a restart binds it again; released by
        #: :meth:`close`.  ``None``: the app is told ``127.0.0.1:0``.
        self.port = lease_port() if spec.contract.needs_port else None
        #: Where it serves HTTP: its ready line's ``httpUrl``, else its port's address, if any.
        self.http_url: str | None = f"http://{LOOPBACK}:{self.port}" if self.port else None
        self.ready_info: dict[str, Any] = {}
        #: The reply that showed it healthy: the health document, or the services protocol's ping.
        self.health_reply: dict[str, Any] = {}
        #: Its id in the services protocol, when readiness is by ``$SRV.PING`` (else ``None``).
        self.micro_id: str | None = None
        #: The test's other instances (set by ``aegis_app_factory``): a ping reply from one of
        #: them does not make this one ready.
        self.peers: Callable[[], Iterable[AppProcess]] = tuple
        self.name = f"{spec.name}[{service_name}/{self.instance_id[:8]}]"
        self._database_url = database_url
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
            "AEGIS_HTTP_BIND": f"{LOOPBACK}:{self.port or 0}",
            "PYTHONUNBUFFERED": "1",
        }
        if self.port is not None:
            ours["AEGIS_HTTP_PORT"] = str(self.port)
        if self.spec.contract.subject is not None:
            ours["AEGIS_HEALTH_SUBJECT"] = self.spec.contract.subject
        if self._database_url is not None:
            ours["AEGIS_DATABASE_URL"] = self._database_url
        given = {**self.spec.env, **extra}
        merged = {**ours, **given}
        # A copy follows its source as overridden (env={"AEGIS_NATS_PASSWORD": "wrong"} reaches
        # the app's own name too), unless the copy's name itself was given.
        renamed = {
            name: merged[source]
            for name, source in self.spec.env_map.items()
            if source in merged and name not in given
        }
        return {**merged, **renamed}

    # -- lifecycle -------------------------------------------------------------

    def start(self, timeout: float | None = None) -> AppProcess:
        """Spawn, wait for the ready line (if any) and for a healthy health check, within
        ``timeout`` seconds (default ``spec.start_timeout``).

        Raises :class:`ServerStartError` if the service exits, never becomes healthy, or the
        harness's own probe connection is refused; ``refusal`` then says whether the server
        refused the service (``tls``, ``auth``, ``permissions``), from the service's log and the
        NATS server's log lines of the attempt."""
        timeout = self.spec.start_timeout if timeout is None else timeout
        offset = self.nats.log_size()
        try:
            self._process.start(timeout)
            self._read_ready_line()
            self._await_health(timeout, offset)
        except ServerStartError as exc:
            raise self._explained(exc, offset) from None
        return self

    def _server_lines(self, offset: int) -> list[str]:
        return self.nats.logs().encode()[offset:].decode(errors="replace").splitlines()

    def _await_health(self, timeout: float, offset: int) -> None:
        def failed(reason: str, code: int | None, probe: NatsConnectError | None = None) -> ServerStartError:
            tail = self._process.tail(40)
            return ServerStartError(self.name, reason, tail, exit_code=code, probe_error=probe)

        contract = self.spec.contract
        try:
            reply = run_sync(
                lambda: wait_healthy(
                    self._process,
                    server=self.nats,
                    health=contract,
                    target=self,
                    timeout=timeout,
                    server_lines=lambda: self._server_lines(offset),
                )
            )
        except Exited:
            code = self._process.kill()
            raise failed(f"exited with code {code} before answering its health check", code) from None
        except HealthRefused as exc:
            code = self._process.kill()
            raise failed(f"the server refused its health subscription: {exc}", code) from None
        except NatsConnectError as exc:
            code = self._exit_within(PROBE_REFUSED_GRACE)
            raise failed(f"the harness's health probe could not connect: {exc}", code, exc) from None
        except AssertionError as exc:
            code = self._process.kill()
            raise failed(
                f"never answered its health check within {timeout:g} s (if it needs longer: "
                f"{setting('app_start_timeout').where}): {exc}",
                code,
            ) from None
        self.health_reply = reply if isinstance(reply, dict) else {}
        if isinstance(contract, ServicePing):
            self.micro_id = str(self.health_reply.get("id") or "") or None

    def peer_ids(self) -> set[str]:
        """The services-protocol ids of the test's other running instances."""
        return {p.micro_id for p in self.peers() if p is not self and p.micro_id and p.is_running}

    def _exit_within(self, seconds: float) -> int | None:
        """Let the process exit by itself for up to ``seconds``, then kill it; its exit code."""
        try:
            wait_until(lambda: not self._process.is_running, f"{self.name} to exit", timeout=seconds)
        except AssertionError:
            pass
        return self._process.kill()

    def _explained(self, error: ServerStartError, offset: int) -> ServerStartError:
        """``error`` with the NATS server's lines from the attempt (those about the harness's own
        probe left out) and the refusal that they and the service's log show."""
        probe_ports = error.probe_error.local_ports if error.probe_error is not None else frozenset()
        server_lines = without_ports(self._server_lines(offset), probe_ports)
        return ServerStartError(
            error.name,
            error.reason,
            error.log_tail,
            error.hint,
            refusal=error.refusal or refusal(error.log_tail, server_lines),
            server_lines=server_lines,
            exit_code=error.exit_code,
            log=self.logs(),
            probe_error=error.probe_error,
            server=self.nats,
        )

    def _read_ready_line(self) -> None:
        if not self.spec.ready_pattern or not self._process.startup_lines:
            return
        match = re.search(self.spec.ready_pattern, self._process.startup_lines[-1])
        if match and "json" in match.groupdict():
            self.ready_info = json.loads(match.group("json"))
            self.http_url = self.ready_info.get("httpUrl", self.http_url)
            self.instance_id = self.ready_info.get("instanceId", self.instance_id)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: deregisters, drains), then SIGKILL after ``timeout``."""
        return self._process.stop(timeout)

    def kill(self) -> int | None:
        """SIGKILL: a crash, no cleanup."""
        return self._process.kill()

    def close(self) -> None:
        """Stop it (if running) and give its port back: the end of the instance."""
        self._process.stop()
        release_port(self.port)

    def restart(self, timeout: float | None = None) -> AppProcess:
        """Stop if running, start again with the same instance id and environment."""
        self._process.stop()
        return self.start(timeout)

    def __repr__(self) -> str:
        return f"<AppProcess {self.name} http={self.http_url} nats={self.nats.url}>"
