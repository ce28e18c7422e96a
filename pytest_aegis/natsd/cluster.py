"""What a NATS cluster is, on every backend that renders the servers' configs: its layout (the
route ports, secured like the client side) and :class:`NatsCluster`, the handle tests get.

JetStream in a cluster needs every node's routes configured when it starts, so the route ports
are leased up front (:mod:`pytest_aegis.ports`: held until the cluster is closed, so a restarted
node finds its ports free; a node whose port a program outside the harness took meanwhile gets a
new one and is started again: the others' stale route to the old port is harmless, the node
routes to them).  Client and monitoring ports are leased as for single servers.  A node restarts
on the same ports with the same JetStream store, routing to the others' current ports.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aegis.certs import CertFiles
from pytest_aegis.errors import AegisError
from pytest_aegis.faults.disk import PowerLoss
from pytest_aegis.faults.proxy import Fault
from pytest_aegis.natsd.health import NodeHealth, all_healthy, read_health
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.membership import remove_peer
from pytest_aegis.natsd.monitor import MONITOR_TIMEOUT, monitor_get
from pytest_aegis.natsd.nemesis import DEFAULT_FAULTS, Nemesis, check_faults, plan
from pytest_aegis.natsd.partition import RouteProxies, partition_groups
from pytest_aegis.natsd.placement import wait_for_placement
from pytest_aegis.natsd.server import NatsRuntime, NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.natsd.store import StoreDamage
from pytest_aegis.ports import LOOPBACK, lease_port, release_port
from pytest_aegis.waiting import async_wait_until

if TYPE_CHECKING:
    from nats.aio.client import Client

#: Seconds :meth:`NatsCluster.wait_until_healthy` waits by default.
HEALTHY_TIMEOUT = 15.0
#: Sizes a cluster may have (JetStream needs a majority: 3 or more to lose one node).
SIZES = range(2, 10)


@dataclass
class ClusterLayout:
    """The routes of one cluster, shared by its nodes' materials (their configs read it when they
    are rendered, so a node started again routes to the others' current ports)."""

    name: str
    route_ports: list[int]
    route_user: str | None = None
    route_password: str | None = None
    route_tls: CertFiles | None = None
    ca_file: Path | None = None
    #: ``(i, j) -> port``: node ``i`` routes to node ``j`` through this port (a route proxy, so
    #: that :meth:`NatsCluster.partition` can cut it); absent: straight to ``j``'s route port.
    via: dict[tuple[int, int], int] = field(default_factory=dict)
    #: With ``via``: the route address every node gossips, where nothing listens, so that no node
    #: opens an implicit route past the proxies (each has an explicit route to every other).
    advertise_port: int | None = None

    @classmethod
    def new(
        cls, size: int, *, secured: bool, route_tls: CertFiles | None, ca_file: Path | None
    ) -> ClusterLayout:
        if size not in SIZES:
            raise ValueError(f"size={size!r}: a cluster has {SIZES.start} to {SIZES.stop - 1} nodes")
        return cls(
            name=f"aegis-{secrets.token_hex(3)}",
            route_ports=[lease_port() for _ in range(size)],
            route_user="aegis-route" if secured else None,
            route_password=secrets.token_urlsafe(18) if secured else None,
            route_tls=route_tls,
            ca_file=ca_file,
        )

    def route_url(self, index: int, *, source: int | None = None) -> str:
        """The URL node ``source`` routes to node ``index`` by."""
        auth = f"{self.route_user}:{self.route_password}@" if self.route_user else ""
        port = self.via.get((source, index), self.route_ports[index]) if source is not None else None
        return f"nats-route://{auth}{LOOPBACK}:{port or self.route_ports[index]}"

    def block(self, index: int) -> dict[str, Any]:
        """The ``cluster { ... }`` part of node ``index``'s config."""
        block: dict[str, Any] = {
            "name": self.name,
            "listen": f"{LOOPBACK}:{self.route_ports[index]}",
            "routes": [
                self.route_url(other, source=index)
                for other in range(len(self.route_ports))
                if other != index
            ],
            "no_advertise": True,  # clients get the URLs they were given, not gossip
        }
        if self.via:  # one route connection per pair, each through its proxy (no pooled extras)
            block["pool_size"] = -1
        if self.advertise_port is not None:
            block["advertise"] = f"{LOOPBACK}:{self.advertise_port}"
        if self.route_user:
            block["authorization"] = {"user": self.route_user, "password": self.route_password, "timeout": 2}
        if self.route_tls is not None:
            block["tls"] = {
                "cert_file": str(self.route_tls.cert),
                "key_file": str(self.route_tls.key),
                "ca_file": str(self.ca_file),
                "verify": True,
                "timeout": 2,
            }
        return block


def _default_user_places(spec: NatsSpec) -> bool:
    """Whether the harness can probe placement as ``spec``'s default user: JetStream on, a
    certificate the session CA vouches for, and no permissions that may deny the JetStream API."""
    return spec.jetstream and spec.permissions is None and spec.server_cert == "valid"


@dataclass
class NatsCluster:
    """A NATS cluster started for one test: ``nodes`` (each a :class:`NatsServer` with everything
    a server has), ``urls``, and the cluster-wide ``connect_kwargs`` / ``connect`` / ``env``."""

    nodes: list[NatsServer]
    layout: ClusterLayout
    entry: NatsServer = field(repr=False)
    routes: RouteProxies | None = field(default=None, repr=False)
    #: Starts one more node (the pool that made the cluster); ``None``: it cannot grow.
    grow: Callable[[], NatsServer] | None = field(default=None, repr=False)
    #: The names of the nodes :meth:`remove_peer` removed: no longer members, whatever they do.
    removed: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    # -- like a server, for the whole cluster ------------------------------------------

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """:meth:`NatsServer.connect_kwargs` with every node's URL in ``servers``."""
        return self.entry.connect_kwargs(**overrides)

    async def connect(self, **overrides: Any) -> Client:
        """A client connected to the cluster (any live node; it fails over to the others)."""
        return await self.entry.connect(**overrides)

    def env(self, prefix: str = "AEGIS_NATS_", *, as_user: str | None = None) -> dict[str, str]:
        """:meth:`NatsServer.env` with every node's URL, comma-separated."""
        return self.entry.env(prefix, as_user=as_user)

    # -- faults, per node ---------------------------------------------------------------

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def stop(self, index: int) -> None:
        self.nodes[index].stop()

    def restart(self, index: int) -> None:
        """Start node ``index`` again: same ports, same JetStream store."""
        self.nodes[index].restart()

    def power_loss(self, index: int) -> PowerLoss:
        """Cut node ``index``'s power (:meth:`NatsServer.power_loss`; the spec's ``power_loss``)."""
        return self.nodes[index].power_loss()

    def pause(self, index: int) -> None:
        self.nodes[index].pause()

    def resume(self, index: int) -> None:
        self.nodes[index].resume()

    def reload(self, index: int, **changes: Any) -> list[str]:
        """Reload node ``index`` with ``changes`` (:meth:`NatsServer.reload`): that node only."""
        return self.nodes[index].reload(**changes)

    def add_node(self) -> NatsServer:
        """Start one more node that joins this running cluster, secured like the others (same
        spec, certificates and route credentials), and return it once it accepts clients; it is
        ``nodes[-1]`` from then on (and in :attr:`urls`, :meth:`connect_kwargs`, :meth:`env`).
        JetStream adds it to the meta group on its own: ``await wait_until_healthy()`` waits
        until it is there and can be placed on."""
        if self.grow is None:
            raise ValueError(f"cluster {self.name} was not started by the harness's pool: it cannot grow")
        if self.size + 1 not in SIZES:
            raise ValueError(f"cluster {self.name} has {self.size} nodes, the most a cluster here has")
        return self.grow()

    async def remove_peer(self, index: int, *, timeout: float = HEALTHY_TIMEOUT) -> None:
        """JetStream's removal of node ``index`` from the cluster (``$JS.API.SERVER.REMOVE``, as
        ``nats server raft peer-remove`` sends it, as the system account's user): the meta group
        drops its peer and JetStream moves its replicas to other nodes where it can.  Returns once
        the meta leader no longer lists it (``timeout`` seconds).  The node itself is left as it
        is (stop it first, as an operator removes a server that is gone); it stays in
        :attr:`nodes`.  Raises :class:`~pytest_aegis.PeerRemovalError` when JetStream refuses, or
        with ``auth="none"`` or ``"token"`` (no system-account user there)."""
        await remove_peer(self, index, timeout=timeout)
        self.removed.add(self.nodes[index].name)

    async def rolling_restart(
        self, *, lame_duck: bool = True, order: Iterable[int] | None = None, timeout: float = HEALTHY_TIMEOUT
    ) -> None:
        """Restart every node in turn, as an upgrade does: each node (in ``order``; default 0, 1,
        ...) enters lame-duck mode (:meth:`NatsServer.lame_duck`: its leaderships and clients move
        to the others) and exits, starts again with its store, and the cluster is healthy again
        (:meth:`wait_until_healthy`, ``timeout`` seconds) before the next node.  ``lame_duck=False``:
        each node is stopped (SIGTERM) instead.  Clients and the test's workload go on meanwhile
        (the blocking steps run in threads)."""
        indices = list(range(self.size)) if order is None else list(order)
        if sorted(indices) != list(range(self.size)):
            raise ValueError(
                f"rolling_restart(order={indices!r}): name each node of cluster {self.name} once "
                f"(0 to {self.size - 1})"
            )
        for index in indices:
            node = self.nodes[index]
            if lame_duck:
                await asyncio.to_thread(node.lame_duck, wait_exit=True)
            await asyncio.to_thread(node.restart)
            await self.wait_until_healthy(timeout)

    def raft_group(self, stream: str, *, account: str = "$G") -> str:
        """The name of ``stream``'s Raft group (``S-R3F-...``), as a running node's monitor
        reports it; :class:`LookupError` when no running node knows the stream."""
        seen = []
        for node in self.nodes:
            if not node.is_running or node.is_paused or node.monitor_url is None:
                continue
            report = monitor_get(node.monitor_url, "/jsz?accounts=true&streams=true&raft=true")
            for details in report.get("account_details") or []:
                if details.get("name") != account:
                    continue
                for detail in details.get("stream_detail") or []:
                    seen.append(detail.get("name"))
                    group = detail.get("stream_raft_group") or (detail.get("cluster") or {}).get("raft_group")
                    if detail.get("name") == stream and group:
                        return str(group)
        raise LookupError(
            f"cluster {self.name}: no running node reports a Raft group for stream {stream!r} of account "
            f"{account!r} (streams seen: {sorted(set(map(str, seen))) or 'none'}); is it replicated?"
        )

    def corrupt(
        self, index: int, stream: str, *, kind: str, what: str = "blocks", seed: int = 0
    ) -> StoreDamage:
        """:meth:`NatsServer.corrupt` on node ``index`` (stopped), the Raft group of ``stream``
        looked up on the running nodes for ``what="snapshot"``."""
        group = self.raft_group(stream) if what == "snapshot" else None
        return self.nodes[index].corrupt(stream, kind=kind, what=what, seed=seed, group=group)

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut the routes between groups of nodes (``partition([0])``: node 0 from the others;
        nodes no group names form one more group); clients keep their connections.  Until
        :meth:`heal`."""
        if self.routes is None:
            raise ValueError(
                f"cluster {self.name} was started without route proxies: it cannot be partitioned"
            )
        self.routes.partition(partition_groups(groups, self.size))

    def route_latency(self, index: int, ms: float, jitter_ms: float = 0) -> Fault:
        """Delay every route byte to and from node ``index`` by ``ms`` milliseconds (± up to
        ``jitter_ms``); clients' connections are untouched.  Until the returned fault is removed
        (or used as a context manager), or :meth:`heal`."""
        if self.routes is None:
            raise ValueError(f"cluster {self.name} was started without route proxies: no route latency")
        if not 0 <= index < self.size:
            raise ValueError(f"route_latency: no node {index} in a cluster of {self.size}")
        faults = self.routes.latency(index, ms, jitter_ms)

        def undo() -> None:
            for fault in faults:
                fault.remove()

        return Fault(f"route latency {ms} ms ± {jitter_ms} ms at node {index}", undo)

    def nemesis(
        self,
        seed: int | None = None,
        *,
        faults: Sequence[str] = DEFAULT_FAULTS,
        streams: Sequence[str] = (),
        steps: int = 6,
        hold: float = 2.0,
        gap: float = 1.0,
        timeout: float = HEALTHY_TIMEOUT,
    ) -> Nemesis:
        """A seeded nemesis (:mod:`~pytest_aegis.natsd.nemesis`) for this cluster:
        ``async with cluster.nemesis(seed=5) as nemesis: ... await nemesis.wait()``.  ``steps``
        faults from ``faults`` (``kill``, ``pause``, ``partition``, ``latency``, ``lame_duck``;
        ``store``: the message blocks of ``streams`` damaged on a stopped node; ``power``: a
        node's power cut, with the spec's ``power_loss=True``), one at a time,
        each held about ``hold`` s after about ``gap`` s of calm and healed before the next (the
        cluster healthy again within ``timeout`` s).  Without ``seed`` one is drawn; either way it
        is in ``nemesis.seed`` and the first line of ``nemesis.history``."""
        chosen = check_faults(faults)
        if self.routes is None and {"partition", "latency"} & set(chosen):
            raise ValueError(
                f"cluster {self.name} was started without route proxies: no partition or latency faults"
            )
        if "power" in chosen and not self.entry.spec.power_loss:
            raise ValueError(
                f"nemesis: the power fault needs a cluster started with power_loss=True (cluster {self.name})"
            )
        if "store" in chosen and (isinstance(streams, str) or not streams):
            raise ValueError(f"nemesis: the store fault needs streams=[...] to damage (got {streams!r})")
        drawn = secrets.randbelow(2**31) if seed is None else seed
        schedule = plan(drawn, self.size, faults=chosen, steps=steps, hold=hold, gap=gap)
        return Nemesis(self, drawn, schedule, timeout=timeout, streams=streams)

    def heal(self) -> None:
        """Let every route connect again, without latency (the cluster heals on its own; wait with
        :meth:`wait_until_healthy`)."""
        if self.routes is not None:
            self.routes.heal()

    def close(self) -> None:
        """Stop every node and the route proxies, and give up their ports."""
        for node in self.nodes:
            if node.is_paused:
                node.resume()
            node.stop()
        if self.routes is not None:
            self.routes.close()
        for port in (*self.layout.route_ports, *(port for node in self.nodes for port in node.ports)):
            release_port(port)

    # -- health -------------------------------------------------------------------------

    def health(self) -> list[NodeHealth]:
        """What every live member says now (blocking: monitoring requests); a node whose peer
        was removed is not a member."""
        live = [
            node
            for node in self.nodes
            if node.is_running and not node.is_paused and node.name not in self.removed
        ]
        for node in live:
            if node.monitor_url is None:
                raise OSError(f"{node.name} has no monitoring endpoint")
        return [read_health(node.name, str(node.monitor_url)) for node in live]

    async def wait_until_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> list[NodeHealth]:
        """Until every live node is healthy (``/healthz`` ok), routes to every other live node, and
        all agree on one elected JetStream meta leader, which can place a stream on every live node
        (:mod:`~pytest_aegis.natsd.placement`); :class:`WaitTimeout` with what each said."""
        deadline = time.monotonic() + timeout
        seen = await async_wait_until(
            lambda: asyncio.to_thread(self.health),
            f"cluster {self.name} to be healthy (routes complete, a JetStream meta leader)",
            timeout=timeout,
            ok=all_healthy,
            transient=(OSError,),
            interval=0.02,
            hint="see the nodes' logs below; a node that cannot route logs why (TLS, authorization)",
        )
        leader = self.nodes[self.index_of(str(seen[0].meta_leader))]
        if _default_user_places(leader.spec):
            nc = await leader.connect(deadline=max(deadline - time.monotonic(), MONITOR_TIMEOUT))
            try:
                remaining = max(deadline - time.monotonic(), MONITOR_TIMEOUT)
                await wait_for_placement(nc, len(seen), timeout=remaining, where=f"cluster {self.name}")
            finally:
                await nc.close()
        return seen

    def index_of(self, server_name: str) -> int:
        names = [node.name for node in self.nodes]
        if server_name not in names:
            raise LookupError(f"{server_name!r} is not a node of cluster {self.name} ({', '.join(names)})")
        return names.index(server_name)

    def node_of(self, client: Client) -> int:
        """The index of the node ``client`` is connected to now (by the port it is connected to);
        :class:`LookupError` when it is not connected, or connected elsewhere (through a proxy)."""
        url = client.connected_url if client.is_connected else None
        if url is None:
            state = "closed" if client.is_closed else "not connected (reconnecting?)"
            raise LookupError(f"node_of: the client is {state}: it is on no node of cluster {self.name}")
        ports = {node.port: index for index, node in enumerate(self.nodes)}
        if url.port not in ports:
            raise LookupError(
                f"node_of: the client is connected to {url.hostname}:{url.port}, no node of cluster "
                f"{self.name} (their ports: {sorted(ports)}); through a proxy?"
            )
        return ports[url.port]

    async def meta_leader(self) -> int:
        """The index of the node that leads the JetStream meta group now."""
        seen = await self.wait_until_healthy()
        leader = seen[0].meta_leader
        assert leader is not None
        return self.index_of(leader)

    async def stream_leader(
        self,
        stream: str,
        timeout: float = HEALTHY_TIMEOUT,
        *,
        via: int | None = None,
        other_than: int | None = None,
    ) -> int:
        """The index of the node that leads ``stream``, once it has a leader (after its leader's
        node died, the replicas elect another: that takes a few seconds).

        ``via``: ask through that node only; during a partition, name a node of the majority (an
        isolated node still names the leader it last knew).  ``other_than``: wait for a leader on
        another node than that one (the one just isolated, say)."""
        nc = await (self.connect() if via is None else self.nodes[via].connect())
        try:
            return await self._leader_of(nc, stream, timeout, other_than=other_than)
        finally:
            await nc.close()

    async def step_down(self, stream: str, timeout: float = HEALTHY_TIMEOUT, *, to: int | None = None) -> int:
        """Have ``stream``'s leader hand over (JetStream's leader step-down) and return the index
        of the node that leads it next: puts a leader where a test needs it, for instance off the
        node a partition will isolate.  ``to``: the node that should lead next; it is named as the
        preferred leader (nats-server 2.11 or later), and the step-down is asked again while
        another node wins the election, until ``timeout``.  A node already leading is left so."""
        deadline = time.monotonic() + timeout
        nc = await self.connect()
        try:
            index = await self._leader_of(nc, stream, timeout)
            if to is None:
                return await self._hand_over(nc, stream, index, None, timeout)
            while index != to:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AegisError(
                        f"cluster {self.name}: stream {stream!r} is led by node {index}, not node {to}, "
                        f"after step-downs for {timeout:g}s (a preferred leader needs nats-server 2.11 "
                        "or later, and a current replica there)"
                    )
                index = await self._hand_over(nc, stream, index, to, max(left, MONITOR_TIMEOUT))
            return index
        finally:
            await nc.close()

    async def _hand_over(self, nc: Client, stream: str, leader: int, to: int | None, timeout: float) -> int:
        """One step-down of ``stream``'s leader ``leader`` (to ``to`` if given); the next leader."""
        body = b"" if to is None else json.dumps({"placement": {"preferred": self.nodes[to].name}}).encode()
        reply = await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", body, timeout=MONITOR_TIMEOUT)
        answer = json.loads(reply.data)
        if "error" in answer:
            where = "" if to is None else f" to node {to}"
            raise AegisError(
                f"cluster {self.name}: stream {stream!r} refused to step down{where}: {answer['error']}"
            )
        return await self._leader_of(nc, stream, timeout, other_than=leader)

    async def _leader_of(self, nc: Client, stream: str, timeout: float, other_than: int | None = None) -> int:
        import nats.errors

        async def leader() -> int | None:
            info = await nc.jetstream(timeout=1).stream_info(stream)
            name = info.cluster.leader if info.cluster is not None else None
            return None if name is None else self.index_of(name)

        elsewhere = "" if other_than is None else f" other than node {other_than}"
        index = await async_wait_until(
            leader,
            f"stream {stream!r} of cluster {self.name} to have a leader{elsewhere}",
            timeout=timeout,
            ok=lambda found: found is not None and found != other_than,
            transient=(nats.errors.TimeoutError, nats.errors.NoRespondersError),
            interval=0.05,
            hint="a stream needs a majority of its replicas' nodes running to elect a leader",
        )
        assert index is not None
        return index

    def __repr__(self) -> str:
        return f"<NatsCluster {self.name} {self.size} nodes ({self.nodes[0].spec.label})>"


class ClusterEntry(NatsServer):
    """The cluster as one :class:`NatsServer` (what ``aegis_nats``, ``nats_client`` and
    ``aegis_app`` use under ``nats_cluster``): the first node's process and logs, every node's URL
    in :meth:`connect_kwargs` and :meth:`env`."""

    def __init__(
        self,
        nodes: list[NatsServer],
        runtime: NatsRuntime,
        material: NatsMaterial,
        *,
        connect_deadline: float,
    ) -> None:
        super().__init__(runtime, material, connect_deadline=connect_deadline)
        self._nodes = nodes

    def connect_kwargs(self, *, as_user: str | None = None, **overrides: Any) -> dict[str, Any]:
        return super().connect_kwargs(
            as_user=as_user, **{"servers": [node.url for node in self._nodes], **overrides}
        )

    def env(self, prefix: str = "AEGIS_NATS_", *, as_user: str | None = None) -> dict[str, str]:
        urls = ",".join(node.url for node in self._nodes)
        return {**super().env(prefix, as_user=as_user), f"{prefix}URL": urls}
