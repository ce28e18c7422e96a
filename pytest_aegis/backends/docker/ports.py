"""Host ports for containers, and the retry when one was taken meanwhile.

With host networking a server in a container binds the host's ports, so it is
told one on its command line (or in its config).  NATS takes ``-1`` (it picks
a free port itself and logs it: no race).  PostgreSQL has no "port 0": we
bind ``127.0.0.1:0``, close, pass the port, and if something took it in
between the server fails with "could not bind ... Address already in use" and
we retry with a fresh one (as :meth:`pytest_aegis.postgres.server.PostgresServer.start`).
"""

from __future__ import annotations

from pytest_aegis.postgres import server as pg_server

PORT_TAKEN = ("could not bind", "already in use", "port is already allocated")
PORT_ATTEMPTS = 3


def free_port() -> int:
    """A port that was free a moment ago (looked up at call time, so tests can substitute it)."""
    return pg_server.free_port()


def port_was_taken(error: BaseException | str) -> bool:
    """The error (or a server's log) says the port was taken before the server could bind it."""
    return any(marker in str(error) for marker in PORT_TAKEN)
