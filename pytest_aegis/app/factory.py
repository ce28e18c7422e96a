"""Starting a test's apps: :class:`AppFactory`, the value of ``aegis_app_factory``.

An app may depend on others, or on third-party servers (``AppSpec.depends_on``): starting it
starts first those of its dependencies that have no running instance in the test yet, in
dependency order, the independent apps in parallel (:func:`~pytest_aegis.app.declared.start_order`).
An app's ``env`` values may name another app's or a server's handle, ``{orders.http_url}``,
``{redis.url}`` (:func:`render_env`), filled in from its latest running instance in the test.  A
start that fails says which apps the test had started so far (their logs are in the failing
test's report).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from pytest_aegis.app.declared import start_order
from pytest_aegis.app.process import AppProcess
from pytest_aegis.app.spec import AppSpec
from pytest_aegis.errors import ConfigError, ServerStartError
from pytest_aegis.faults.targets import NatsFaultProxy
from pytest_aegis.thirdparty.server import ThirdPartyServer

if TYPE_CHECKING:
    from pytest_aegis.fixtures.servers import ServerFactory

#: What ``{app.ATTR}`` in an env value may read of another app's instance.
HANDLE_ATTRIBUTES = ("http_url", "port", "service_name", "instance_id")
#: What ``{server.ATTR}`` may read of a third-party server.
SERVER_ATTRIBUTES = ("url", "host", "port")
_REFERENCE = re.compile(r"\{([A-Za-z][A-Za-z0-9_-]*)\.([a-z_]+)\}")

#: A handle an env value may name.
Handle = AppProcess | ThirdPartyServer


def render_env(env: Mapping[str, str], handles: Mapping[str, Handle], app: str) -> dict[str, str]:
    """``env`` with each ``{NAME.ATTR}`` that names an app or a server in ``handles`` filled in
    from it (ATTR one of :data:`HANDLE_ATTRIBUTES` for an app, :data:`SERVER_ATTRIBUTES` for a
    server); other braces are left as they are.  :class:`ConfigError` when ATTR is not one of
    those, or the handle has no value for it."""
    rendered = {}
    for key, value in env.items():

        def fill(match: re.Match[str], key: str = key) -> str:
            name, attribute = match.groups()
            if name not in handles:
                return match.group(0)
            server = isinstance(handles[name], ThirdPartyServer)
            allowed = SERVER_ATTRIBUTES if server else HANDLE_ATTRIBUTES
            if attribute not in allowed:
                raise ConfigError(
                    f"app {app!r}: env {key}={env[key]!r}: {{{name}.{attribute}}} is not something an "
                    f"app's env can name of {'a server' if server else 'an app'}; use one of: "
                    f"{', '.join(allowed)}"
                )
            found = getattr(handles[name], attribute)
            if found is None:
                raise ConfigError(
                    f"app {app!r}: env {key}={env[key]!r}: {name} has no {attribute} (its health "
                    "contract does not probe a port and its ready line gave none)"
                )
            return str(found)

        rendered[key] = _REFERENCE.sub(fill, value)
    return rendered


#: ``make(spec, env, **keywords)``: a new, registered, not yet started instance.
Make = Callable[..., AppProcess]


class AppFactory:
    """``aegis_app_factory``: ``factory(app=None, spec=None, ...)`` starts one instance (and, first,
    the app's dependencies that the test has not started); :meth:`start_set` starts several
    declared apps in dependency order.  Parallel starts run on ``starter``, whose threads must
    outlive the instances (a child started with PR_SET_PDEATHSIG dies with its spawning thread).
    ``servers`` starts the third-party servers apps depend on (``aegis_server_factory``)."""

    def __init__(
        self,
        make: Make,
        spec_of: Callable[[str | None, AppSpec | None], AppSpec],
        apps: Callable[[], Mapping[str, AppSpec]],
        starter: Executor,
        servers: ServerFactory,
    ) -> None:
        self._make = make
        self._starter = starter
        self._spec_of = spec_of
        self._apps = apps
        self._servers = servers
        #: Every instance this test started, in order.
        self.started: list[AppProcess] = []

    def __call__(
        self,
        *,
        app: str | None = None,
        spec: AppSpec | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float | None = None,
        **keywords: Any,
    ) -> AppProcess:
        chosen = self._spec_of(app, spec)
        if chosen.depends_on:  # on the same NATS (the server itself, when this one is behind a proxy)
            nats = keywords.get("nats")
            self._start_missing(chosen.depends_on, nats.target if isinstance(nats, NatsFaultProxy) else nats)
        instance = self._new(chosen, env, keywords)
        return self._started([(instance, start_timeout)])[0]

    def start_set(self, *names: str, nats: object = None) -> dict[str, Handle]:
        """Start the declared apps ``names`` and their dependencies (apps and third-party servers
        without an instance in this test yet): in dependency order, each wave's apps in parallel,
        wired to ``nats`` (as ``aegis_app_factory(nats=...)``; default the test's server).  Their
        latest instances, by name."""
        self._start_missing(names, nats)
        latest = self._latest()
        return {name: latest[name] for wave in self._order(names) for name in wave}

    def _order(self, names: Sequence[str]) -> list[list[str]]:
        return start_order(names, self._apps(), servers=self._servers.known())

    def _start_missing(self, names: Sequence[str], nats: object) -> None:
        apps = self._apps()
        keywords = {} if nats is None else {"nats": nats}
        for wave in self._order(names):
            missing = [name for name in wave if name not in self._latest()]
            for name in missing:
                if name not in apps:  # a third-party server: first, from this thread
                    self._servers(name)
            self._started([(self._new(apps[name], None, keywords), None) for name in missing if name in apps])

    def _new(self, spec: AppSpec, env: Mapping[str, str] | None, keywords: dict[str, Any]) -> AppProcess:
        rendered = render_env({**spec.env, **(env or {})}, self._latest(), spec.name)
        instance = self._make(spec, env=rendered, **keywords)
        self.started.append(instance)
        return instance

    def _latest(self) -> dict[str, Handle]:
        """The latest running instance of each app and server of this test, by name."""
        servers = {server.spec.name: server for server in self._servers.started if server.is_running}
        return servers | {instance.spec.name: instance for instance in self.started if instance.is_running}

    def _started(self, starts: list[tuple[AppProcess, float | None]]) -> list[AppProcess]:
        """Start these instances (in parallel when several); the first failure, with a note naming
        the apps the test had started, once every start of the wave has ended."""
        if len(starts) <= 1:
            outcomes = [_outcome(*start) for start in starts]
        else:  # on threads that outlive the test: see Harness.app_starter
            outcomes = list(self._starter.map(lambda start: _outcome(*start), starts))
        failed = next((outcome for outcome in outcomes if isinstance(outcome, ServerStartError)), None)
        if failed is not None:
            others = [i.name for i in self.started if i.is_running]
            failed.add_note(
                "apps started in this test so far: "
                + (", ".join(others) if others else "none")
                + " (their logs are in the test's report)"
            )
            raise failed
        return [outcome for outcome in outcomes if isinstance(outcome, AppProcess)]


def _outcome(instance: AppProcess, timeout: float | None) -> AppProcess | ServerStartError:
    try:
        return instance.start(timeout)
    except ServerStartError as exc:
        return exc
