"""One proxied TCP connection: the client's socket, the server's, and a pump per direction that
applies that direction's :class:`~pytest_aegis.faults.flows.Flow` (runs on the proxy's loop)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field

from pytest_aegis.faults.flows import SIDES, Flow, Side

#: Bytes read at a time; a bandwidth limit writes smaller pieces (a tenth of a second's worth).
CHUNK = 64 * 1024


@dataclass
class Faults:
    """The faults of one proxy, shared by its links (touched only on the proxy's loop)."""

    flows: dict[Side, Flow] = field(default_factory=lambda: {side: Flow() for side in SIDES})
    flowing: dict[Side, asyncio.Event] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    forwarded: dict[Side, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))

    def __post_init__(self) -> None:
        for side in SIDES:
            self.flowing[side] = asyncio.Event()
            self.flowing[side].set()

    def update(self) -> None:
        """Wake or hold the pumps after a change of ``held``."""
        for side in SIDES:
            if self.flows[side].held:
                self.flowing[side].clear()
            else:
                self.flowing[side].set()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST), as a dropped connection looks to its peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """A client connection and the connection to the server made for it."""

    def __init__(
        self,
        faults: Faults,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._faults = faults
        self._client = client
        self._server = server

    def writer(self, side: Side) -> asyncio.StreamWriter:
        """The socket ``side``'s bytes go out of: upstream to the server, downstream to the client."""
        return self._server[1] if side == "upstream" else self._client[1]

    async def run(self) -> None:
        """Forward both ways until both ends are done (or one is reset: the other is reset too)."""
        pumps = [
            asyncio.ensure_future(self._pump("upstream", self._client[0], self._server[1])),
            asyncio.ensure_future(self._pump("downstream", self._server[0], self._client[1])),
        ]
        try:
            await asyncio.gather(*pumps)
        except (ConnectionError, OSError):
            self.reset(SIDES)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (self._client[1], self._server[1]):
                writer.transport.abort() if writer.transport.is_closing() else writer.close()

    def reset(self, sides: tuple[Side, ...]) -> None:
        for side in sides:
            reset(self.writer(side))

    async def _pump(self, side: Side, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        faults = self._faults

        async def read() -> None:
            try:
                while True:
                    await faults.flowing[side].wait()  # a blackhole reads nothing: TCP backs up
                    data = await reader.read(CHUNK)
                    if not data:
                        return
                    queue.put_nowait((loop.time() + faults.flows[side].delay(faults.rng), data))
            finally:
                queue.put_nowait(None)

        reading = asyncio.ensure_future(read())
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                await faults.flowing[side].wait()  # what was read before the blackhole waits too
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self._write(side, writer, data)
            await reading  # re-raises a reset seen while reading
            if writer.can_write_eof() and not writer.transport.is_closing():
                writer.write_eof()  # half-close, as the peer did
        finally:
            reading.cancel()

    async def _write(self, side: Side, writer: asyncio.StreamWriter, data: bytes) -> None:
        flow = self._faults.flows[side]
        piece = max(1, int(flow.rate / 10)) if flow.rate else len(data)
        for start in range(0, len(data), piece):
            chunk = data[start : start + piece]
            if flow.rate:
                await asyncio.sleep(flow.transfer_time(len(chunk)))
            writer.write(chunk)
            await writer.drain()
            self._faults.forwarded[side] += len(chunk)
