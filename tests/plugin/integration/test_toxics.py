"""aegis_proxy's toxiproxy toxics (slicer, limit_data, slow_close, timeout, reset_peer), byte by
byte on plain TCP to a recording echo server, and on a real secured NATS connection.

Each test asserts something a no-op fault could not give (a slice of exactly the size asked, a
limit met to the byte, a close or a reset seen); where a test shows that something does *not*
happen while a fault holds it, the fault holds it for a minute, so a loaded machine cannot make
the test pass or fail by timing."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from nats.aio.client import Client

from pytest_aegis import FaultProxy, NatsServer
from pytest_aegis.waiting import wait_until

#: A delay long enough that nothing it holds back happens while a test looks.
HELD_MS = 60_000
Fate = Literal["reset", "closed", "open", "silent"]


@dataclass
class Peer:
    """What the server side of one connection received, and whether it has ended (a FIN or a
    reset from the proxy)."""

    sock: socket.socket
    received: bytearray = field(default_factory=bytearray)
    ended: bool = False


class Target:
    """A TCP server on 127.0.0.1 that records what each connection sends and echoes it back."""

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.peers: list[Peer] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            peer = Peer(sock)
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(peer,), daemon=True).start()

    def _serve(self, peer: Peer) -> None:
        with peer.sock, contextlib.suppress(OSError):
            try:
                while data := peer.sock.recv(65536):
                    peer.received += data
                    if self.echo:
                        peer.sock.sendall(data)
            finally:
                peer.ended = True

    def peer(self, index: int = 0) -> Peer:
        return (
            wait_until(lambda: len(self.peers) > index, f"connection {index + 1} at the target", timeout=10)
            and (self.peers[index])
        )

    def close(self) -> None:
        self._listener.close()
        for peer in self.peers:
            peer.sock.close()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[Target]:
    """A target that only records (nothing comes back to race a close)."""
    server = Target(echo=False)
    yield server
    server.close()


@pytest.fixture
def proxy(target: Target, aegis_proxy: Any) -> FaultProxy:
    made: FaultProxy = aegis_proxy(("127.0.0.1", target.port), name="toxics")
    return made


def received(peer: Peer, data: bytes) -> None:
    wait_until(lambda: bytes(peer.received) == data, f"the target to receive {len(data)} bytes", timeout=10)


def dial(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"the connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def fate(sock: socket.socket, *, probe: bytes = b"?", wait: float = 10) -> Fate:
    """What a connection does when ``probe`` is sent and an answer awaited for ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        if probe:
            sock.sendall(probe)
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except TimeoutError:
        return "silent"
    return "open" if data else "closed"


def fate_of_new(proxy: FaultProxy) -> Fate:
    """The :func:`fate` of a new connection; a reset may come before ``connect()`` returns."""
    try:
        sock = dial(proxy)
    except ConnectionResetError:
        return "reset"
    with sock:
        return fate(sock)


def test_slicer_forwards_one_slice_at_a_time_until_removed(target: Target, proxy: FaultProxy) -> None:
    sent = bytes(range(256)) * 4  # 1024 bytes
    with dial(proxy) as sock:
        with proxy.slicer(100, delay_us=HELD_MS * 1000, direction="upstream"):
            sock.sendall(sent)
            wait_until(lambda: proxy.forwarded("upstream") >= 100, "the first slice", timeout=10)
            assert proxy.forwarded("upstream") == 100, "one slice of 100 bytes, the next a minute later"
            assert read_exactly(sock, 100) == sent[:100]  # the echo of that slice
        # removed: the rest goes at once, in order
        assert read_exactly(sock, len(sent) - 100) == sent[100:]
    assert bytes(target.peer().received) == sent


@pytest.mark.nats_secure(auth="userpass", tls=True)
@pytest.mark.asyncio
async def test_nats_over_tls_survives_slices_of_a_few_bytes(
    nats_secure: NatsServer, nats_client: Client, aegis_proxy: Any
) -> None:
    proxy = aegis_proxy(nats_secure)

    async def answer(msg: Any) -> None:
        await msg.respond(msg.data[::-1])

    await nats_client.subscribe("sliced", cb=answer)
    await nats_client.flush()
    # 16 to 112 bytes a slice: the TLS handshake (in slices too) must end within the server's TLS
    # timeout (2 s), which one-byte slices of a few kB of certificates can exceed on a busy machine
    with proxy.slicer(64, size_variation=48, delay_us=10):
        nc = await proxy.connect(allow_reconnect=False)
        try:
            reply = await nc.request("sliced", b"abc" * 500, timeout=30)
            assert reply.data == b"cba" * 500
            assert nc.stats["reconnects"] == 0
        finally:
            await nc.close()


def test_limit_data_closes_the_connection_at_exactly_that_many_bytes(sink: Target, aegis_proxy: Any) -> None:
    proxy: FaultProxy = aegis_proxy(("127.0.0.1", sink.port))
    with dial(proxy) as before:
        before.sendall(b"early")  # before the fault: not counted
        received(sink.peer(0), b"early")
        with proxy.limit_data(500, direction="upstream"):
            before.sendall(b"a" * 1000)
            wait_until(lambda: sink.peers[0].ended, "the target to see the connection closed", timeout=10)
            assert bytes(sink.peers[0].received) == b"early" + b"a" * 500
            with dial(proxy) as later:
                later.sendall(b"b" * 499)
                received(sink.peer(1), b"b" * 499)
                assert not sink.peers[1].ended, "under the limit: open"
                later.sendall(b"bb")
                wait_until(lambda: sink.peers[1].ended, "the second connection closed", timeout=10)
                assert bytes(sink.peers[1].received) == b"b" * 500
        with dial(proxy) as after:
            after.sendall(b"c" * 2000)
            received(sink.peer(2), b"c" * 2000)
            assert not sink.peers[2].ended, "removed: no limit"


def test_slow_close_holds_a_servers_close_back_until_removed(target: Target, proxy: FaultProxy) -> None:
    with dial(proxy) as sock:
        assert fate(sock) == "open"
        with proxy.slow_close(HELD_MS, direction="downstream"):
            target.peer().sock.shutdown(socket.SHUT_RDWR)  # the server closes its side
            assert fate(sock, probe=b"", wait=0.5) == "silent", "the close is held back"
            assert proxy.connections == 1
        assert fate(sock, probe=b"", wait=10) == "closed", "removed: the held close is passed on"


def test_timeout_holds_bytes_then_closes_and_drops_them(target: Target, proxy: FaultProxy) -> None:
    with dial(proxy) as sock:
        assert fate(sock) == "open"
        with proxy.timeout(200):
            assert fate(sock, probe=b"held") in ("closed", "reset")  # reset: the kernel had unread bytes
            with dial(proxy) as later:
                assert fate(later, probe=b"held too") in ("closed", "reset")
        assert bytes(target.peer(0).received) == b"?", "what was held was dropped"
        assert proxy.forwarded("upstream") == 1, (
            "of all that was sent, only the first probe reached the server"
        )
        with dial(proxy) as after:
            assert fate(after) == "open"


def test_timeout_zero_holds_until_removed_then_the_bytes_flow(target: Target, proxy: FaultProxy) -> None:
    with dial(proxy) as sock:
        with proxy.timeout(0):
            sock.sendall(b"held")
            assert fate(sock, probe=b"", wait=0.5) == "silent"
            assert proxy.forwarded("upstream") == 0 and proxy.connections == 1
        assert read_exactly(sock, 4) == b"held"


def test_reset_peer_resets_open_connections_and_new_ones_until_removed(
    target: Target, proxy: FaultProxy
) -> None:
    with dial(proxy) as open_before:
        assert fate(open_before) == "open"
        with proxy.reset_peer():
            assert fate(open_before) == "reset"
            for _ in range(5):
                assert fate_of_new(proxy) == "reset"
        with dial(proxy) as after:
            assert fate(after) == "open"


def test_reset_peer_after_a_delay_lets_a_connection_live_that_long(target: Target, proxy: FaultProxy) -> None:
    with dial(proxy) as soon:
        with proxy.reset_peer(after_ms=300):
            assert fate(soon, probe=b"", wait=30) == "reset", "reset 300 ms after the fault began"
    with dial(proxy) as late:
        with proxy.reset_peer(after_ms=HELD_MS):
            assert fate(late) == "open", "a minute to live"
        assert fate(late) == "open", "removed: its reset is called off"


def test_removing_one_fault_leaves_a_later_one_in_effect(target: Target, proxy: FaultProxy) -> None:
    with dial(proxy) as sock:
        first = proxy.latency(10)
        hole = proxy.blackhole(direction="downstream")
        first.remove()
        assert fate(sock, wait=0.5) == "silent", "the blackhole begun after the latency still holds"
        hole.remove()
        assert read_exactly(sock, 1) == b"?"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.slicer(0), "average_size=0: expected a whole number >= 1"),
        (lambda p: p.slicer(10, 10), "size_variation=10: must be smaller than average_size=10"),
        (lambda p: p.slicer(10, delay_us=-1), "delay_us=-1: expected a number >= 0"),
        (lambda p: p.limit_data(1.5), "bytes=1.5: expected a whole number >= 0"),
        (lambda p: p.slow_close("1"), "delay_ms='1': expected a number"),
        (lambda p: p.timeout(-5), "ms=-5: expected a number >= 0"),
        (lambda p: p.reset_peer(after_ms=True), "after_ms=True: expected a number"),
        (lambda p: p.reset_peer(direction="sideways"), "direction='sideways' is not one of: both, upstream"),
    ],
)
def test_bad_toxic_arguments_name_what_is_wrong(proxy: FaultProxy, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        call(proxy)
