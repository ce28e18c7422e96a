"""A proxy's listening socket and its accept loop: :class:`Listener`.

Not ``asyncio.Server``: closing one while a connection it accepted waits for its transport (the
accept and the transport are made in different loop steps) makes asyncio fail on that connection
(``Server._attach`` asserts that the server still listens) and drop its transport half made, with
the socket open; the garbage collector then closes it later, with a ResourceWarning in whatever
test runs then.  A partition's ``refuse()`` closes listeners while routes reconnect at once, so
this happened (and ``loop.sock_accept``, cancelled, can lose a connection it accepted in the same
step).  Here the loop's reader callback accepts, and every accepted socket becomes a transport of
the protocol (which may reset it at once), whether or not the listener has stopped meanwhile;
stopping removes the reader before it closes the listening socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

#: Connections the kernel may queue before the proxy accepts them.
BACKLOG = 128


class Listener:
    """Listens on ``host:port`` (``0``: a free port) and hands each connection to a transport of
    ``protocol()``; made and stopped on the loop it runs on."""

    def __init__(self, host: str, port: int, protocol: Callable[[], asyncio.Protocol]) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # as asyncio's servers do: a port whose connections linger in TIME_WAIT is bindable
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(BACKLOG)
            self._socket.setblocking(False)
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        self._protocol = protocol
        self._adopting: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._socket, self._accept_ready)

    def _accept_ready(self) -> None:
        """Accept every connection the kernel has queued; each becomes a transport."""
        while True:
            try:
                connection, _ = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # gone before it was accepted
                continue
            connection.setblocking(False)
            adopting = self._loop.create_task(self._adopt(connection))
            self._adopting.add(adopting)
            adopting.add_done_callback(self._adopting.discard)

    async def _adopt(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, connection)
        except OSError:  # the client reset it meanwhile
            connection.close()

    def stop(self) -> None:
        """Stop accepting and close the listening socket (connects are refused from now on);
        connections already accepted go on."""
        self._loop.remove_reader(self._socket)
        self._socket.close()
