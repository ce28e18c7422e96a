"""A TCP proxy that injects network faults between a client (the service under test, a test's
own client) and a server: :class:`FaultProxy`.

It forwards bytes untouched, so TLS stays end to end and certificates are still checked.  It runs
on an asyncio loop in a thread of its own, so it forwards while a test blocks in synchronous code;
every call into it waits at most :data:`CALL_TIMEOUT` seconds.  It listens on 127.0.0.1 on a port
leased for its lifetime (:mod:`pytest_aegis.ports`: after ``refuse()`` it listens on the same port
again, and nothing can have taken it meanwhile), lives in the pytest process (a ``kill -9`` of
pytest takes it along) and is closed after the test that made it.

Faults (toxiproxy's toxics and nats-server's test network proxy, in-process), each on
``direction="both" | "upstream" | "downstream"``, each applied at once and returning a
:class:`Fault` that undoes it (``fault.remove()``, or use it as a context manager)::

    with proxy.latency(200):        # every chunk waits 200 ms (± jitter_ms)
        ...
    proxy.blackhole()               # connections stay open, nothing is forwarded (half-open)
    proxy.heal()                    # every fault removed; held bytes flow again

Faults stack as toxiproxy's toxics do (latencies add up, the lowest bandwidth wins); removing one
leaves the others, including those begun after it, in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

from pytest_aegis.errors import ProxyError
from pytest_aegis.faults.flows import (
    Direction,
    Effect,
    Ending,
    Side,
    Slicing,
    non_negative,
    positive,
    sides_of,
    whole,
)
from pytest_aegis.faults.link import CONNECT_TIMEOUT, End, Faults, Link
from pytest_aegis.faults.listener import Listener
from pytest_aegis.faults.loop import CALL_TIMEOUT, LoopThread
from pytest_aegis.ports import LOOPBACK, release_port, start_on_free_port

__all__ = ["CONNECT_TIMEOUT", "Fault", "FaultProxy", "ProxyError"]


class Fault:
    """A fault in effect; :meth:`remove` (or leaving its ``with`` block) undoes it."""

    def __init__(
        self, description: str, undo: Callable[[], None], *, on_enter: Callable[[], None] | None = None
    ) -> None:
        self.description = description
        self._undo: Callable[[], None] | None = undo
        self._on_enter = on_enter

    def remove(self) -> None:
        """Undo this fault (once; later calls do nothing)."""
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()

    def __enter__(self) -> Fault:
        if self._on_enter is not None:
            self._on_enter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<Fault {self.description}{'' if self._undo else ' (removed)'}>"


class FaultProxy:
    """Listens on ``127.0.0.1:port`` and forwards every connection to ``target_host:target_port``."""

    def __init__(
        self, target_host: str, target_port: int, *, name: str = "proxy", loop: LoopThread | None = None
    ) -> None:
        self.name = name
        self.target_host = target_host
        #: Where new connections go (settable: a server that moved to another port).
        self.target_port = target_port
        self.host = LOOPBACK
        self._own_loop = loop is None
        self._thread = loop or LoopThread(f"aegis-{name}")
        self._faults: Faults
        self._listener: Listener | None = None
        self._cutting: tuple[Side, ...] = ()
        self._refusals = 0  # refuse() faults in effect: a client whose socket is made is reset
        self._listen_refusals = 0  # those of them that stopped listening
        self.accepted = 0
        self._closed = False
        try:
            self._thread.call(self._setup)
            self.port: int = start_on_free_port(lambda port: self._thread.run(lambda: self._listen(port)))
        except BaseException:
            if self._own_loop:
                self._thread.close()
            raise

    def _setup(self) -> None:
        self._faults = Faults()  # its events belong to the proxy's loop

    # -- state, read from the test's thread ----------------------------------------

    @property
    def connections(self) -> int:
        """Client connections open through the proxy now."""
        return self._thread.call(lambda: len(self._faults.links))

    def forwarded(self, direction: Side) -> int:
        """Bytes forwarded so far ``upstream`` (to the server) or ``downstream`` (to clients)."""
        sides_of(direction)
        return self._thread.call(lambda: self._faults.forwarded[direction])

    # -- faults ------------------------------------------------------------------

    def latency(self, ms: float, jitter_ms: float = 0, *, direction: Direction = "both") -> Fault:
        """Delay every chunk by ``ms`` milliseconds, ± up to ``jitter_ms`` (order is kept)."""
        effect = Effect(
            latency=non_negative("ms", ms) / 1000, jitter=non_negative("jitter_ms", jitter_ms) / 1000
        )
        return self._apply(f"latency {ms} ms ± {jitter_ms} ms ({direction})", direction, lambda _: effect)

    def bandwidth(self, bytes_per_second: float, *, direction: Direction = "both") -> Fault:
        """Forward at most ``bytes_per_second``."""
        effect = Effect(rate=positive("bytes_per_second", bytes_per_second))
        return self._apply(f"bandwidth {bytes_per_second} B/s ({direction})", direction, lambda _: effect)

    def blackhole(self, *, direction: Direction = "both") -> Fault:
        """Forward nothing and read nothing; connections stay open (the half-open case).  The bytes
        wait, and flow when the fault is removed, as TCP's do on a path that heals."""
        return self._apply(f"blackhole ({direction})", direction, lambda _: Effect(held=True))

    def slicer(
        self,
        average_size: int,
        size_variation: int = 0,
        delay_us: float = 0,
        *,
        direction: Direction = "both",
    ) -> Fault:
        """Forward each chunk in slices of ``average_size`` ± up to ``size_variation`` bytes,
        ``delay_us`` microseconds apart (toxiproxy's ``slicer``: a peer that reads what arrives
        must put messages together from pieces)."""
        average = whole("average_size", average_size, minimum=1)
        variation = whole("size_variation", size_variation, minimum=0)
        if variation >= average:
            raise ValueError(
                f"size_variation={size_variation!r}: must be smaller than average_size={average_size!r} "
                "(a slice has at least one byte)"
            )
        effect = Effect(slicing=Slicing(average, variation, non_negative("delay_us", delay_us) / 1e6))
        description = f"slicer {average_size} ± {size_variation} B every {delay_us} µs ({direction})"
        return self._apply(description, direction, lambda _: effect)

    def limit_data(self, bytes: int, *, direction: Direction = "both") -> Fault:
        """Close each connection (FIN) once ``bytes`` bytes have passed in a direction, counted per
        connection from when the fault began; the byte that would exceed it is not forwarded."""
        effect = Effect(limit=whole("bytes", bytes, minimum=0))
        return self._apply(f"limit_data {bytes} B ({direction})", direction, lambda _: effect)

    def slow_close(self, delay_ms: float, *, direction: Direction = "both") -> Fault:
        """Pass on a close (FIN) in a direction ``delay_ms`` milliseconds late: a peer that closed
        is seen open that long (a reset still goes at once).  Removing the fault passes the held
        close on at once."""
        effect = Effect(slow_close=non_negative("delay_ms", delay_ms) / 1000)
        return self._apply(f"slow_close {delay_ms} ms ({direction})", direction, lambda _: effect)

    def timeout(self, ms: float = 0, *, direction: Direction = "both") -> Fault:
        """Forward nothing (as :meth:`blackhole`), then close each connection (FIN) ``ms``
        milliseconds after the fault began (after it connected, for a later one); the held bytes
        are dropped.  ``ms=0``: hold until the fault is removed, then the bytes flow."""
        after = non_negative("ms", ms) / 1000

        def effect(now: float) -> Effect:
            return Effect(held=True, ending=Ending(reset=False, after=after, since=now) if after else None)

        return self._apply(f"timeout {ms} ms ({direction})", direction, effect)

    def reset_peer(self, after_ms: float = 0, *, direction: Direction = "both") -> Fault:
        """Reset each connection (TCP RST) ``after_ms`` milliseconds after the fault began (after
        it connected, for a later one): until the fault is removed, no connection lasts longer.
        ``direction`` as for :meth:`cut`."""
        after = non_negative("after_ms", after_ms) / 1000

        def effect(now: float) -> Effect:
            return Effect(ending=Ending(reset=True, after=after, since=now))

        return self._apply(f"reset_peer after {after_ms} ms ({direction})", direction, effect)

    def cut(self, *, direction: Direction = "both") -> Fault:
        """Reset every open connection now (TCP RST; ``upstream``: the server's side only,
        ``downstream``: the client's side only).

        As a context manager (``with proxy.cut():``), every connection is kept out until the block
        ends: entering it resets, in the same step on the proxy's loop, whatever connected since
        the call, and from then on each new connection is reset as soon as it is accepted, however
        fast a client (in this process or another) reconnects.  On its own line, ``proxy.cut()``
        cuts once: the connections open at that moment are reset, and a client that reconnects
        (at once or later) gets through as before."""
        sides = sides_of(direction)

        def reset_open() -> None:
            for link in list(self._faults.links):
                link.reset(sides)

        def keep_out() -> None:  # one loop step: nothing is accepted between the two
            self._cutting = sides
            reset_open()

        def let_in() -> None:
            self._cutting = ()

        self._thread.call(reset_open)
        return Fault(
            f"cut ({direction})",
            lambda: self._thread.call(let_in),
            on_enter=lambda: self._thread.call(keep_out),
        )

    def refuse(self, *, direction: Direction = "both") -> Fault:
        """Refuse new connections (open ones go on): ``both`` / ``downstream``: the proxy stops
        listening, so a connect is refused (ECONNREFUSED); ``upstream``: clients are accepted but
        the server is not reached, and they are reset at once.  Either way, from the moment this
        returns until the fault is removed, no new connection gets through: one the proxy had not
        finished accepting when it stopped listening is reset too."""
        listening = sides_of(direction) != ("upstream",)

        async def begin() -> None:
            self._refusals += 1
            if listening:
                self._listen_refusals += 1
                await self._stop_listening()

        def end() -> bool:
            """Whether to listen again: the last refusal that stopped listening is removed."""
            self._refusals = max(0, self._refusals - 1)
            if listening:
                self._listen_refusals = max(0, self._listen_refusals - 1)
            return self._listener is None and self._listen_refusals == 0

        def undo() -> None:
            if self._thread.call(end):
                self._listen_again()

        self._thread.run(begin)
        return Fault(f"refuse ({direction})", undo)

    def heal(self) -> None:
        """Remove every fault: normal latency and bandwidth, held bytes flow, new connections
        accepted again."""

        def clear() -> None:
            self._faults.clear()
            self._cutting = ()
            self._refusals = self._listen_refusals = 0

        self._thread.call(clear)
        if self._listener is None:
            self._listen_again()

    def _apply(self, description: str, direction: Direction, effect: Callable[[float], Effect]) -> Fault:
        """Put ``effect(loop time now)`` into effect on ``direction``'s sides, as one fault."""
        sides = sides_of(direction)
        key = self._thread.call(lambda: self._faults.apply(sides, effect(self._thread.loop.time())))
        return Fault(description, lambda: self._thread.call(lambda: self._faults.remove(key)))

    # -- on the loop -------------------------------------------------------------

    async def _listen(self, port: int) -> int:
        self._listener = Listener(self.host, port, self._accept)
        return self._listener.port

    def _listen_again(self) -> None:
        try:
            self._thread.run(lambda: self._listen(self.port))
        except OSError as exc:
            raise ProxyError(
                f"{self.name}: cannot listen on 127.0.0.1:{self.port} again after refuse(): {exc}; "
                "the port is leased to this proxy (pytest_aegis.ports), so a program outside the "
                "harness bound it meanwhile: find it with `ss -ltnp 'sport = :"
                f"{self.port}'`"
            ) from exc

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.stop()  # open connections go on

    def _accept(self) -> End:
        self.accepted += 1
        return Link(self._faults, self._admits, (self.target_host, self.target_port)).client

    def _admits(self) -> bool:
        """Whether a client whose socket was just made may connect (else it is reset at once)."""
        return not (self._cutting or self._refusals or self._closed)

    # -- end ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening, reset every open connection and stop the proxy's thread (once; later
        calls do nothing)."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            await self._stop_listening()
            for _ in range(3):  # a connection accepted meanwhile is reset as it is made (_admits)
                for link in list(self._faults.links):
                    link.reset(("upstream", "downstream"))
                # the resets close their sockets in callbacks: let them run before the loop stops,
                # or a socket is left for the garbage collector (a ResourceWarning in some test)
                await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            self._thread.run(shutdown, timeout=CALL_TIMEOUT)
        if self._own_loop:  # a shared loop is closed by its owner
            self._thread.close()
        release_port(self.port)  # nothing listens there again

    def __repr__(self) -> str:
        target = f"{self.target_host}:{self.target_port}"
        return f"<{type(self).__name__} {self.name} 127.0.0.1:{self.port} -> {target}>"
