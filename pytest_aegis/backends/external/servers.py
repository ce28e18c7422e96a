"""The external NATS server as the fixtures hand it out: with a list of URLs (a cluster's nodes),
every URL goes into the clients' ``servers`` and the service's ``AEGIS_NATS_URL``, so
``nats_client`` and ``aegis_app`` fail over between the nodes as they would in production."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.pool import NatsPool
from pytest_aegis.natsd.server import NatsRuntime, NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState

if TYPE_CHECKING:
    from pytest_aegis.backends.base import Backend
    from pytest_aegis.certs import AegisCA


class ExternalNatsServer(NatsServer):
    """A :class:`NatsServer` reached at any of ``urls``: :attr:`url` is the first (its runtime's
    address), :meth:`connect_kwargs` and :meth:`env` carry them all."""

    def __init__(
        self, runtime: NatsRuntime, material: NatsMaterial, urls: tuple[str, ...], *, connect_deadline: float
    ) -> None:
        super().__init__(runtime, material, connect_deadline=connect_deadline)
        self.urls = urls

    def connect_kwargs(self, *, as_user: str | None = None, **overrides: Any) -> dict[str, Any]:
        return super().connect_kwargs(as_user=as_user, **{"servers": list(self.urls), **overrides})

    def env(self, prefix: str = "AEGIS_NATS_", *, as_user: str | None = None) -> dict[str, str]:
        return {**super().env(prefix, as_user=as_user), f"{prefix}URL": ",".join(self.urls)}


class ExternalNatsPool(NatsPool):
    """The session's NATS pool on the external backend: its servers are :class:`ExternalNatsServer`."""

    def __init__(
        self,
        backend: Backend,
        session: SessionState,
        ca: Callable[[], AegisCA],
        *,
        urls: tuple[str, ...],
        keep: bool,
        connect_deadline: float,
    ) -> None:
        super().__init__(backend, session, ca, keep=keep, connect_deadline=connect_deadline)
        self._urls = urls
        self.topology = "cluster" if len(urls) > 1 else "single"

    def start(self, spec: NatsSpec, *, name: str | None = None) -> NatsServer:
        server = super().start(spec, name=name)
        handle = ExternalNatsServer(
            server.runtime, server.material, self._urls, connect_deadline=server.connect_deadline
        )
        handle.topology = server.topology  # the pool's, from its URLs
        self.servers[self.servers.index(server)] = handle  # the pool closes (and lists) this one
        return handle
