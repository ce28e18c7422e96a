"""The session's NATS servers: one per distinct spec, started on first use.

Servers with equal specs are shared by every test of the session that asks for
them; a different spec gets a different server.  :meth:`NatsPool.start` makes
an unshared server (factories, tests that stop or kill their server).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_aegis.certs import AegisCA
from pytest_aegis.matrix import record
from pytest_aegis.natsd.server import CONNECT_DEADLINE, NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState

if TYPE_CHECKING:  # the backends start what this pool hands out
    from pytest_aegis.backends.base import Backend


class NatsPool:
    def __init__(
        self,
        backend: Backend,
        session: SessionState,
        ca: Callable[[], AegisCA],
        *,
        keep: bool = False,
        connect_deadline: float = CONNECT_DEADLINE,
    ) -> None:
        self._backend = backend
        self._connect_deadline = connect_deadline
        self._session = session
        self._ca = ca
        self._keep = keep
        self._shared: dict[NatsSpec, NatsServer] = {}
        self.servers: list[NatsServer] = []

    def get(self, spec: NatsSpec) -> NatsServer:
        """The shared server for ``spec``, started if this is its first use."""
        server = self._shared.get(spec)
        if server is None:
            server = self._shared[spec] = self.start(spec)
        elif not server.is_running:
            # A test stopped or killed it: start it again (same port and store)
            # rather than hand the next test a dead server.
            server.restart()
        return server

    def shared(self) -> list[NatsServer]:
        """The shared servers started so far (one per spec asked for with :meth:`get`)."""
        return list(self._shared.values())

    def start(self, spec: NatsSpec, *, name: str | None = None) -> NatsServer:
        """A new server for ``spec``, not shared with anyone."""
        name = name or f"{re.sub(r'[^a-z0-9]+', '-', spec.label.lower()).strip('-')}-{len(self.servers) + 1}"
        directory = self._session.new_dir(f"nats-{name}")
        material = self._backend.nats_material(spec, directory / "material", self._ca)
        runtime = self._backend.start_nats(material, name=name, directory=directory)
        server = NatsServer(runtime, material, connect_deadline=self._connect_deadline)
        self.servers.append(server)
        record.ran(material.spec)
        return server

    def close(self) -> list[NatsServer]:
        """Stop every server (or, with keep, leave them running, resumed if a test left them
        paused); return those left running."""
        kept = []
        for server in self.servers:
            if server.is_paused:
                with contextlib.suppress(Exception):
                    server.resume()
            if self._keep and server.is_running:
                kept.append(server)
            else:
                with contextlib.suppress(Exception):
                    server.stop()
        self.servers.clear()
        self._shared.clear()
        return kept
