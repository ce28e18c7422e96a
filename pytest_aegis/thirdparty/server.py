"""A third-party server as a test holds it: :class:`ThirdPartyServer`.

Its lifecycle is every server's here: ``start`` returns once its health contract passes (the
ready line first, when the spec has one), ``stop`` / ``kill`` / ``restart`` / ``pause`` /
``resume``, its log in failing reports, its port leased for its lifetime (a restart binds it
again, nothing else can take it meanwhile), its process or container swept by the next session
after a ``kill -9``.  On the external backend it is an existing server: the lifecycle verbs raise
:class:`~pytest_aegis.errors.ExternalServerError`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Self

from pytest_aegis.aio import run_sync
from pytest_aegis.app.readiness import Exited, wait_healthy
from pytest_aegis.errors import ServerStartError, WaitTimeout
from pytest_aegis.ports import LOOPBACK, lease_port, release_port
from pytest_aegis.session import SessionState
from pytest_aegis.thirdparty.runtime import ServerLaunch, ServerRuntime
from pytest_aegis.thirdparty.spec import ServerSpec, render

#: The backend's hook that runs an instance (:meth:`~pytest_aegis.backends.base.Backend.server_runtime`).
Launcher = Callable[[ServerLaunch], ServerRuntime]


def server_env(name: str, url: str, host: str, port: int, prefix: str | None = None) -> dict[str, str]:
    """The variables that tell a program where the server ``name`` is (see :meth:`ThirdPartyServer.env`)."""
    prefix = prefix if prefix is not None else name.upper().replace("-", "_") + "_"
    return {f"{prefix}URL": url, f"{prefix}HOST": host, f"{prefix}PORT": str(port)}


class ThirdPartyServer:
    """One instance of a :class:`~pytest_aegis.thirdparty.spec.ServerSpec`: ``url``, ``host``,
    ``port``; a context manager that stops it (and gives its port back) at exit."""

    def __init__(
        self, spec: ServerSpec, launcher: Launcher, *, session: SessionState, keep: bool = False
    ) -> None:
        self.spec = spec
        self.name = f"{spec.name}-{secrets.token_hex(3)}"
        leased = lease_port()
        directory = session.new_dir(f"server-{spec.name}")
        ready = re.compile(spec.ready_pattern) if spec.ready_pattern else None
        try:
            self._runtime = launcher(
                ServerLaunch(
                    name=self.name,
                    spec=spec,
                    port=leased,
                    directory=directory,
                    ready=(lambda line: bool(ready.search(line))) if ready else None,
                    log_path=directory / f"{spec.name}.log",
                    session=session,
                    keep=keep,
                    env=dict(
                        zip(
                            spec.env,
                            render(
                                list(spec.env.values()), host=LOOPBACK, port=leased, directory=str(directory)
                            ),
                            strict=True,
                        )
                    ),
                )
            )
        except BaseException:
            release_port(leased)  # no server to bind it: the backend cannot run this one
            raise
        address = self._runtime.address
        if address is not None:  # an existing server: its own address, no port of ours
            release_port(leased)
        self._leased = None if address is not None else leased
        #: Where it listens.
        self.host, self.port = address or (LOOPBACK, leased)
        #: How clients reach it (the spec's ``url`` with its address).
        self.url = render([spec.url], host=self.host, port=self.port, directory=str(directory))[0]
        #: What showed it ready (the health contract's last probe).
        self.health_reply: object = None

    # -- what a probe reads (app.health.ProbeTarget) -------------------------------------

    @property
    def service_name(self) -> str:
        return self.spec.name

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def peer_ids(self) -> tuple[str, ...]:
        return ()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> Self:
        """Run it and return once its health contract passes, within ``timeout`` seconds (default
        the spec's ``start_timeout``); :class:`ServerStartError` with its log otherwise."""
        timeout = self.spec.start_timeout if timeout is None else timeout
        self._runtime.start(timeout)
        try:
            self.health_reply = run_sync(
                lambda: wait_healthy(self._runtime, health=self.spec.health, target=self, timeout=timeout)
            )
        except Exited:
            code = self._runtime.kill()
            raise self._failed(f"exited with code {code} before it was ready", code) from None
        except WaitTimeout as exc:
            code = self._runtime.kill()
            raise self._failed(f"not ready within {timeout:g} s: {exc}", code) from None
        return self

    def _failed(self, reason: str, code: int | None) -> ServerStartError:
        return ServerStartError(
            self.name,
            reason,
            self._runtime.tail(40),
            self.spec.install_hint if code == 127 else None,
            exit_code=code,
            log=self.logs(),
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (its graceful shutdown), SIGKILL after ``timeout``; its exit code."""
        return self._runtime.stop(timeout)

    def kill(self) -> int | None:
        """SIGKILL, as a crash would; its exit code."""
        return self._runtime.kill()

    def restart(self, timeout: float | None = None) -> Self:
        """Stop it if running and start it again, on the same port."""
        self._runtime.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """Freeze it (SIGSTOP of its processes, or the engine's pause): its connections stay open
        and unanswered until :meth:`resume`."""
        self._runtime.pause()

    def resume(self) -> None:
        self._runtime.resume()

    @property
    def is_paused(self) -> bool:
        return self._runtime.is_paused

    def close(self) -> None:
        """Stop it (if it runs) and give its port back: the end of the instance."""
        try:
            if self._runtime.address is None:
                self._runtime.stop()
        finally:
            release_port(self._leased)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inspection -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._runtime.pid

    @property
    def is_running(self) -> bool:
        return self._runtime.is_running

    def logs(self) -> str:
        """Its whole log (all its starts)."""
        return self._runtime.logs()

    def log_size(self) -> int:
        return self._runtime.log_size()

    def tail(self, lines: int = 50) -> list[str]:
        return self._runtime.tail(lines)

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """``<NAME>_URL``, ``_HOST`` and ``_PORT`` (``prefix`` default: the name in upper case,
        ``-`` as ``_``), to hand to a program that uses it."""
        return server_env(self.spec.name, self.url, self.host, self.port, prefix)

    def __repr__(self) -> str:
        return f"<ThirdPartyServer {self.name} url={self.url}>"
