"""Ports: where servers listen, and the one retry for a port that was taken meanwhile.

NATS picks its own ports (``-1``) and logs them: no race.  PostgreSQL has no "port 0", and a
container on a published or host port must be told its port, so those starts bind
``127.0.0.1:0``, close the socket, pass the port on, and, should something else take it in
between, see the server fail to bind and try again with a fresh port
(:func:`start_on_free_port`, used by every such start and by the benchmarks).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Every server the harness starts listens here, and tests send traffic only here.
LOOPBACK = "127.0.0.1"
#: "Pick a free port and log it" (nats-server's ``-1``).
RANDOM_PORT = -1
#: How many fresh ports a start tries before it gives up.
PORT_ATTEMPTS = 3
#: What a server or an engine says when the port was taken before it could bind it (PostgreSQL,
#: nats-server, the Docker engine).
PORT_TAKEN = ("could not bind", "already in use", "port is already allocated")


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (see :func:`start_on_free_port` for the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_was_taken(error: BaseException | str) -> bool:
    """The error (or a server's log) says the port was taken before the server could bind it."""
    return any(marker in str(error) for marker in PORT_TAKEN)


def start_on_free_port(
    start: Callable[[int], T],
    *,
    attempts: int = PORT_ATTEMPTS,
    taken: Callable[[Exception], bool] = port_was_taken,
) -> T:
    """``start(port)`` with a fresh free port; again with another one, up to ``attempts`` times in
    all, while it fails because ``taken(error)`` (the port was taken before the server bound it).
    Any other error, or the last attempt's, propagates.  ``start`` cleans up after itself."""
    for attempt in range(1, attempts + 1):
        try:
            return start(free_port())
        except Exception as exc:
            if attempt == attempts or not taken(exc):
                raise
    raise AssertionError("unreachable: attempts must be at least 1")
