"""One proxied TCP connection: the client's socket and the server's, as asyncio protocols, and one
:class:`Half` per direction applying that direction's :class:`~pytest_aegis.faults.flows.Flow`
(all on the proxy's loop); the faults in effect on a proxy, :class:`Faults`.

With no fault in effect, bytes are written on as they arrive, from the read callback itself: no
task, no queue, so an idle proxy costs one loop iteration per chunk.  Under a fault they queue,
and a pump task sends them when their delay and the bandwidth allow."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_aegis.faults.flows import SIDES, Effect, Flow, Side, fold

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
    #: The effects in effect, by key, in the order they began.
    effects: dict[int, tuple[tuple[Side, ...], Effect]] = field(default_factory=dict)
    keys: itertools.count[int] = field(default_factory=itertools.count)

    def apply(self, sides: tuple[Side, ...], effect: Effect) -> int:
        """Put ``effect`` into effect on ``sides``; its key, for :meth:`remove`."""
        key = next(self.keys)
        self.effects[key] = (sides, effect)
        self.update()
        return key

    def remove(self, key: int) -> None:
        """End one effect (the others stay as they are)."""
        if self.effects.pop(key, None) is not None:
            self.update()

    def clear(self) -> None:
        self.effects.clear()
        self.update()

    def update(self) -> None:
        """Fold the flows again and apply them to the open links (hold or release a blackhole,
        start pumps, time endings)."""
        for side in SIDES:
            self.flows[side] = fold(
                [(key, effect) for key, (sides, effect) in self.effects.items() if side in sides]
            )
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
        self.changed = asyncio.Event()  # the faults changed: a wait for a delay looks again
        self.ended = False  # the source half-closed
        self.counted: dict[int, int] = {}  # bytes written under each byte limit
        self.closing: asyncio.TimerHandle | None = None  # a close a slow_close holds back
        self._close_action: Callable[[], None] | None = None

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
            self.pass_close(self._write_eof)

    def block(self, blocked: bool) -> None:
        self.writable.clear() if blocked else self.writable.set()
        self.update()

    def update(self) -> None:
        """Read or hold the source as the flow and the sink allow; pump what is queued; pass on a
        close held back by a slow_close that has been removed."""
        self.source.pause(self.flow.held or not self.writable.is_set())
        if self.pending and self.pump is None and not self.flow.held:
            self.pump = asyncio.get_running_loop().create_task(self._pump())
        if self.closing is not None and not self.flow.slow_close:
            self.closing.cancel()
            self._closed_late()

    def pass_close(self, action: Callable[[], None]) -> None:
        """Close the sink (``action``) now, or after the flow's slow_close."""
        if not self.flow.slow_close:
            action()
        elif self.closing is None:
            self._close_action = action
            self.closing = asyncio.get_running_loop().call_later(self.flow.slow_close, self._closed_late)

    def _closed_late(self) -> None:
        action, self._close_action, self.closing = self._close_action, None, None
        if action is not None:
            action()

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the faults change meanwhile."""
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), seconds)

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending and not self.flow.held:
                due, data = self.pending.popleft()
                # a latency removed meanwhile lets what it delayed go at once
                while (wait := due - loop.time()) > 0 and (self.flow.latency or self.flow.jitter):
                    await self._sleep(wait)
                if rest := await self._paced(data):
                    self.pending.appendleft((due, rest))
        finally:
            self.pump = None
        if not self.pending and self.ended:
            self.pass_close(self._write_eof)

    async def _paced(self, data: bytes) -> bytes:
        """Write ``data`` as the slicer, the bandwidth and the sink allow; what a blackhole begun
        meanwhile held back."""
        rng = self.link.faults.rng
        while data and not self.flow.held and not self.sink.lost:
            await self.writable.wait()
            flow = self.flow
            size = next(flow.slicing.sizes(len(data), rng)) if flow.slicing else CHUNK
            if flow.rate:
                size = min(size, max(1, int(flow.rate / 10)))
                await self._sleep(flow.transfer_time(min(size, len(data))))
            self._write(data[:size])
            data = data[size:]
            if data and flow.slicing and flow.slicing.delay:
                await self._sleep(flow.slicing.delay)
        return data

    def _write(self, data: bytes) -> None:
        transport = self.sink.transport
        if transport is None or transport.is_closing():
            return
        limits = self.flow.limits
        allowed = min((limit - self.counted.get(key, 0) for key, limit in limits.items()), default=len(data))
        data = data[: max(0, allowed)]
        if data:
            transport.write(data)
            self.link.faults.forwarded[self.side] += len(data)
        for key in limits:
            self.counted[key] = self.counted.get(key, 0) + len(data)
        if limits and allowed <= len(data):  # a byte limit reached: the link is closed (FIN)
            self.pending.clear()
            self.link.close()

    def _write_eof(self) -> None:
        transport = self.sink.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
        self.link.half_closed()

    def cancel(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        if self.closing is not None:
            self.closing.cancel()


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
        self.accepted_at = 0.0
        #: The endings (reset_peer, timeout) timed for this link, by fault key and side.
        self._endings: dict[tuple[int, Side], asyncio.TimerHandle] = {}

    def _accepted(self, transport: asyncio.Transport) -> None:
        if not self.admits():
            reset(transport)
            return
        self.accepted_at = asyncio.get_running_loop().time()
        self.faults.links.add(self)
        transport.pause_reading()  # until the server is reached
        self._connecting = asyncio.get_running_loop().create_task(self._connect())
        self._time_endings()

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
        """The faults changed (or the server's socket is made): apply them."""
        self._time_endings()
        for half in self.halves.values():
            half.changed.set()
        if self.server.transport is not None:
            for half in self.halves.values():
                half.update()

    def _time_endings(self) -> None:
        """Time each ending in effect once (from when its fault began, or from this link's accept
        if later); forget those whose fault was removed."""
        loop = asyncio.get_running_loop()
        wanted = {
            (key, side): ending for side in SIDES for key, ending in self.faults.flows[side].endings.items()
        }
        for gone in self._endings.keys() - wanted.keys():
            self._endings.pop(gone).cancel()
        for (key, side), ending in wanted.items():
            if (key, side) not in self._endings:
                at = max(ending.since, self.accepted_at) + ending.after
                self._endings[key, side] = timer = loop.call_at(at, self._end, side, ending.reset)
                if at <= loop.time():  # due now: ended before the call that began it returns
                    timer.cancel()
                    self._end(side, ending.reset)

    def _end(self, side: Side, by_reset: bool) -> None:
        self.reset((side,)) if by_reset else self.close()

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
            self.close()

    def lost(self, end: End, exc: Exception | None) -> None:
        """One socket is gone: reset the other if it was reset, else close it (after its bytes,
        and after the slow_close of the direction that writes to it)."""
        other = self.server if end is self.client else self.client
        if other.transport is not None and not other.lost:
            if exc is not None:
                reset(other.transport)
            else:
                self.halves[other.writes].pass_close(other.transport.close)
        if self.client.lost and (self.server.lost or self.server.transport is None):
            self.close()

    def close(self) -> None:
        """Close both sockets (FIN, after the bytes written so far) and stop everything timed."""
        self.faults.links.discard(self)
        for half in self.halves.values():
            half.cancel()
        for timer in self._endings.values():
            timer.cancel()
        self._endings.clear()
        if self._connecting is not None:
            self._connecting.cancel()
        for end in (self.client, self.server):
            if end.transport is not None and not end.lost:
                end.transport.close()
