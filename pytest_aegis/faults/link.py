"""One proxied TCP connection: the client's socket and the server's, as asyncio protocols, and one
:class:`Half` per direction applying that direction's :class:`~pytest_aegis.faults.flows.Flow`
(all on the proxy's loop).

With no fault in effect, bytes are written on as they arrive, from the read callback itself: no
task, no queue, so an idle proxy costs one loop iteration per chunk.  Under a fault they queue,
and a pump task sends them when their delay and the bandwidth allow."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_aegis.faults.flows import SIDES, Flow, Side

#: Bytes a pump writes at most at once; a bandwidth limit writes a tenth of a second's worth.
CHUNK = 64 * 1024
#: Seconds the proxy may take to connect to its target for a new client.
CONNECT_TIMEOUT = 5.0


@dataclass
class Faults:
    """The faults of one proxy and its open links (touched only on the proxy's loop)."""

    flows: dict[Side, Flow] = field(default_factory=lambda: {side: Flow() for side in SIDES})
    rng: random.Random = field(default_factory=random.Random)
    forwarded: dict[Side, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    links: set[Link] = field(default_factory=set)

    def update(self) -> None:
        """Apply changed flows to the open links (hold or release a blackhole, start pumps)."""
        for link in list(self.links):
            link.update()


def reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset (RST), as a dropped connection looks to its peer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class End(asyncio.Protocol):
    """One socket of a link: the client's (it reads ``upstream`` bytes) or the server's."""

    def __init__(
        self, link: Link, reads: Side, on_made: Callable[[asyncio.Transport], None] | None = None
    ) -> None:
        self.link = link
        self.reads = reads
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._on_made = on_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_made is not None:
            self._on_made(transport)

    def data_received(self, data: bytes) -> None:
        self.link.halves[self.reads].feed(data)

    def eof_received(self) -> bool:
        self.link.halves[self.reads].end()
        return True  # keep the other direction open: a half-close, passed on

    def pause_writing(self) -> None:
        self.link.halves[self.writes].block(True)

    def resume_writing(self) -> None:
        self.link.halves[self.writes].block(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.link.lost(self, exc)

    @property
    def writes(self) -> Side:
        return "downstream" if self.reads == "upstream" else "upstream"

    def pause(self, paused: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading() if paused else self.transport.resume_reading()


class Half:
    """One direction of a link: bytes read from ``source``, written to ``sink``."""

    def __init__(self, link: Link, side: Side, source: End, sink: End) -> None:
        self.link, self.side, self.source, self.sink = link, side, source, sink
        self.pending: deque[tuple[float, bytes]] = deque()
        self.pump: asyncio.Task[None] | None = None
        self.writable = asyncio.Event()  # cleared while the sink's buffer is full
        self.writable.set()
        self.ended = False  # the source half-closed

    @property
    def flow(self) -> Flow:
        return self.link.faults.flows[self.side]

    def feed(self, data: bytes) -> None:
        if self.pump is None and not self.pending and self.flow.plain:  # nothing queued, no fault
            self._write(data)
            return
        self.pending.append((asyncio.get_running_loop().time() + self.flow.delay(self.link.faults.rng), data))
        self.update()

    def end(self) -> None:
        self.ended = True
        if self.pump is None and not self.pending:
            self._write_eof()

    def block(self, blocked: bool) -> None:
        self.writable.clear() if blocked else self.writable.set()
        self.update()

    def update(self) -> None:
        """Read or hold the source as the flow and the sink allow; pump what is queued."""
        self.source.pause(self.flow.held or not self.writable.is_set())
        if self.pending and self.pump is None and not self.flow.held:
            self.pump = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending and not self.flow.held:
                due, data = self.pending.popleft()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if rest := await self._paced(data):
                    self.pending.appendleft((due, rest))
        finally:
            self.pump = None
        if not self.pending and self.ended:
            self._write_eof()

    async def _paced(self, data: bytes) -> bytes:
        """Write ``data`` as the bandwidth and the sink allow; what a blackhole begun meanwhile
        held back."""
        while data and not self.flow.held:
            await self.writable.wait()
            rate = self.flow.rate
            piece = max(1, int(rate / 10)) if rate else CHUNK
            if rate:
                await asyncio.sleep(self.flow.transfer_time(min(piece, len(data))))
            self._write(data[:piece])
            data = data[piece:]
        return data

    def _write(self, data: bytes) -> None:
        transport = self.sink.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.link.faults.forwarded[self.side] += len(data)

    def _write_eof(self) -> None:
        transport = self.sink.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
        self.link.half_closed()

    def cancel(self) -> None:
        if self.pump is not None:
            self.pump.cancel()


class Link:
    """A client connection and the connection to the server made for it."""

    def __init__(self, faults: Faults, admits: Callable[[], bool], target: tuple[str, int]) -> None:
        self.faults = faults
        self.target = target
        #: Asked once the client's socket is made (not when the proxy's server makes the protocol:
        #: a fault begun between the two must keep this client out too).
        self.admits = admits
        #: The protocol of the accepted client socket (the server's connects once it is made).
        self.client = End(self, "upstream", on_made=self._accepted)
        self.server = End(self, "downstream")
        self.halves: dict[Side, Half] = {
            "upstream": Half(self, "upstream", self.client, self.server),
            "downstream": Half(self, "downstream", self.server, self.client),
        }
        self._connecting: asyncio.Task[None] | None = None

    def _accepted(self, transport: asyncio.Transport) -> None:
        if not self.admits():
            reset(transport)
            return
        self.faults.links.add(self)
        transport.pause_reading()  # until the server is reached
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.target
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self.server, host, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):  # the server is down: the client sees its connection reset
            self.reset(("downstream",))
            return
        if self.client.lost:
            self.reset(("upstream",))
            return
        self.update()

    def update(self) -> None:
        if self.server.transport is not None:
            for half in self.halves.values():
                half.update()

    def reset(self, sides: tuple[Side, ...]) -> None:
        """Reset ``upstream``: the server's socket, ``downstream``: the client's.  Either way the
        link no longer counts as open (its sockets' callbacks finish closing it)."""
        self.faults.links.discard(self)
        for side in sides:
            end = self.server if side == "upstream" else self.client
            if end.transport is not None and not end.lost:
                reset(end.transport)

    def half_closed(self) -> None:
        if all(half.ended and not half.pending for half in self.halves.values()):
            self._close()

    def lost(self, end: End, exc: Exception | None) -> None:
        """One socket is gone: reset the other if it was reset, else close it (after its bytes)."""
        other = self.server if end is self.client else self.client
        if other.transport is not None and not other.lost:
            reset(other.transport) if exc is not None else other.transport.close()
        if self.client.lost and (self.server.lost or self.server.transport is None):
            self._close()

    def _close(self) -> None:
        self.faults.links.discard(self)
        for half in self.halves.values():
            half.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        for end in (self.client, self.server):
            if end.transport is not None and not end.lost:
                end.transport.close()
