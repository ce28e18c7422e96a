"""The harness's own races, each reproduced on purpose (issue 21): a port released for a restart or
a re-listen must come back to its owner however busy the machine's ephemeral range is, and
``with proxy.cut():`` must keep out a client that reconnects at once from another process.

Each test fails on the code before its fix (ports from ``bind(127.0.0.1:0)``; a cut whose block
let in what connected between the cut and the ``with``) within its cycles, and passes after it.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_aegis import FaultProxy, NatsCluster, NatsServer
from pytest_aegis.harness import get_harness
from pytest_aegis.waiting import wait_until

#: Sockets the neighbour binds to port 0 at once, each time a port is free for its owner to take
#: again: a fifth of the kernel's ephemeral range of 28232 ports with bind(0)'s parity, so a port
#: taken from that range is lost about one cycle in seven.
NEIGHBOUR_BINDS = 2500
#: Outgoing connections the neighbour opens too (their local ports come from the same range).
NEIGHBOUR_CONNECTS = 200
CYCLES = 200
#: Starting a container 200 times takes minutes; the docker backend restarts fewer times (the
#: ports are leased by the same module on every backend).
DOCKER_RESTARTS = 20


class Neighbour:
    """Another program on the machine that takes ports from the kernel's ephemeral range, as
    other tests, xdist workers and every outgoing connection do."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(NEIGHBOUR_CONNECTS)
        self.address = self._listener.getsockname()

    @contextlib.contextmanager
    def taking_ports(self) -> Iterator[None]:
        """Hold :data:`NEIGHBOUR_BINDS` ports bound to port 0 and :data:`NEIGHBOUR_CONNECTS`
        outgoing connections."""
        sockets: list[socket.socket] = []
        try:
            for _ in range(NEIGHBOUR_BINDS):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", 0))
            for _ in range(NEIGHBOUR_CONNECTS):
                sock = socket.socket()
                sockets.append(sock)
                sock.connect(self.address)
            yield
        finally:
            for sock in sockets:
                sock.close()
            with contextlib.suppress(BlockingIOError):
                self._listener.setblocking(False)
                while True:  # accepted by the kernel; accept and close them
                    self._listener.accept()[0].close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def neighbour() -> Iterator[Neighbour]:
    made = Neighbour()
    try:
        yield made
    finally:
        made.close()


def test_a_proxy_listens_on_its_port_again_after_refuse_however_busy_the_ephemeral_range(
    nats_server: NatsServer, aegis_proxy: Any, neighbour: Neighbour
) -> None:
    proxy: FaultProxy = aegis_proxy(nats_server)
    for _ in range(CYCLES):
        fault = proxy.refuse()
        with neighbour.taking_ports():
            fault.remove()  # listens again on proxy.port: a ProxyError if the neighbour took it
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as through:
            assert through.recv(4) == b"INFO"  # the server's greeting, through the proxy


def listening(server: NatsServer) -> tuple[int, int | None]:
    return server.port, server.runtime.monitor_port


def cycles_here(request: pytest.FixtureRequest) -> int:
    return DOCKER_RESTARTS if get_harness(request.config).config.backend == "docker" else CYCLES


def test_a_restarted_server_gets_its_ports_back_however_busy_the_ephemeral_range(
    request: pytest.FixtureRequest, nats_server_factory: Any, neighbour: Neighbour
) -> None:
    server: NatsServer = nats_server_factory()
    ports = listening(server)
    for _ in range(cycles_here(request)):
        server.stop()
        with neighbour.taking_ports():
            server.restart()  # a ServerStartError ("address already in use") if one was taken
        assert listening(server) == ports


@pytest.mark.asyncio
async def test_a_cluster_heals_and_restarts_its_nodes_on_their_ports_however_busy_the_ephemeral_range(
    request: pytest.FixtureRequest, nats_cluster_factory: Any, neighbour: Neighbour
) -> None:
    """A partition releases nothing now, but it did: the route proxies stopped listening and
    listened again on heal.  A node's restart releases its client, monitoring and route ports."""
    cluster: NatsCluster = nats_cluster_factory(size=3)
    ports = [listening(node) for node in cluster.nodes]
    route_ports = list(cluster.layout.route_ports)
    for cycle in range(cycles_here(request)):
        node = cycle % cluster.size
        cluster.partition([node])
        cluster.stop(node)
        with neighbour.taking_ports():
            cluster.heal()  # the route proxies listen again: a ProxyError if a port was taken
            cluster.restart(node)  # a ServerStartError if one of the node's ports was taken
    assert [listening(node) for node in cluster.nodes] == ports
    assert cluster.layout.route_ports == route_ports
    await cluster.wait_until_healthy()


#: Connects to the proxy and hangs up, over and over: the proxy is always accepting someone.
HAMMERING_CLIENT = textwrap.dedent(
    """
    import socket, sys
    port = int(sys.argv[1])
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
        except OSError:
            pass
    """
)
REFUSALS = 100


def test_refusing_while_connections_are_being_accepted_leaves_no_socket_behind(
    nats_server: NatsServer, aegis_proxy: Any
) -> None:
    """asyncio's Server dropped a connection accepted just before its close() half made, socket
    open: the garbage collector closed it later, a ResourceWarning in whatever test ran then (in
    a soak, amid partitions whose routes reconnect at once)."""
    proxy: FaultProxy = aegis_proxy(nats_server)
    client = subprocess.Popen(
        [sys.executable, "-c", HAMMERING_CLIENT, str(proxy.port)], stdout=subprocess.DEVNULL
    )
    try:
        for cycle in range(REFUSALS):
            wait_until(
                lambda seen=proxy.accepted: proxy.accepted > seen, f"cycle {cycle}: a connection", timeout=10
            )
            proxy.refuse().remove()
    finally:
        client.kill()
        client.wait()
    gc.collect()  # a socket left half accepted is closed now: a ResourceWarning fails this test


#: Connects to the proxy in a loop, at once after each reset, and says when it got in ("in", once
#: it read the server's first bytes through the proxy) and when it was thrown out ("out").
RECONNECTING_CLIENT = textwrap.dedent(
    """
    import socket, sys
    port = int(sys.argv[1])
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                if sock.recv(1):
                    print("in", flush=True)
                    while sock.recv(65536):
                        pass
        except OSError:
            pass
    """
)


def test_with_cut_keeps_out_a_client_that_reconnects_at_once_from_another_process(
    nats_server: NatsServer, aegis_proxy: Any
) -> None:
    proxy: FaultProxy = aegis_proxy(nats_server)
    client = subprocess.Popen(
        [sys.executable, "-c", RECONNECTING_CLIENT, str(proxy.port)], stdout=subprocess.DEVNULL
    )
    try:
        for cycle in range(100):
            wait_until(lambda: proxy.connections == 1, f"cycle {cycle}: the client to connect", timeout=10)
            with proxy.cut():
                # The client is reset and tries again at once, over and over: wait until it has
                # tried three times inside the block, or got in (the race this test is about).
                seen = wait_until(
                    lambda tried=proxy.accepted: (proxy.accepted - tried, proxy.connections),
                    f"cycle {cycle}: the client to try to connect during the cut",
                    timeout=10,
                    ok=lambda seen: seen[0] >= 3 or seen[1] > 0,
                )
                assert proxy.connections == 0, (
                    f"cycle {cycle}: a connection got through during `with proxy.cut()` "
                    f"(attempts, open connections) = {seen}"
                )
    finally:
        client.kill()
        client.wait()


#: Leases every port of the (two-port) range, says so, and waits to be killed.
LEASING_CHILD = textwrap.dedent(
    """
    import sys, time
    from pytest_aegis.ports import lease_port
    print(lease_port(), lease_port(), flush=True)
    time.sleep(600)
    """
)


def two_free_ports() -> int:
    """``p`` such that ``p`` and ``p + 1`` can be bound now (outside the ephemeral range)."""
    for port in range(23000, 32000, 7):
        with socket.socket() as one, socket.socket() as two:
            try:
                one.bind(("127.0.0.1", port))
                two.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two free ports next to each other in 23000-32000")


def test_a_lease_holds_against_other_processes_until_its_holder_is_killed_then_is_swept(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_aegis import PortRangeError
    from pytest_aegis.ports import DIR_ENV, RANGE_ENV, lease_port, release_port, sweep_leases

    low = two_free_ports()
    monkeypatch.setenv(RANGE_ENV, f"{low}-{low + 1}")
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "leases"))
    holder = subprocess.Popen([sys.executable, "-c", LEASING_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert sorted(map(int, holder.stdout.readline().split())) == [low, low + 1]
        with pytest.raises(PortRangeError, match=f"in {low}-{low + 1}"):
            lease_port()
        assert sweep_leases() == 0  # held: not swept
    finally:
        holder.kill()  # SIGKILL: the kernel drops its locks
        holder.communicate()
    assert sweep_leases() == 2
    assert not list((tmp_path / "leases").iterdir())
    port = lease_port()
    try:
        assert port in (low, low + 1)
    finally:
        release_port(port)
    assert not list((tmp_path / "leases").iterdir()), "a released lease leaves no file"
