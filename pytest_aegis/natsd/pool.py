"""The session's NATS servers: one per distinct spec, started on first use.

Servers with equal specs are shared by every test of the session that asks for
them; a different spec gets a different server.  :meth:`NatsPool.start` makes
an unshared server (factories, tests that stop or kill their server).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_aegis.certs import AegisCA
from pytest_aegis.matrix import record
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.server import CONNECT_DEADLINE, NatsServer
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.ports import PORT_ATTEMPTS, lease_port, port_was_taken, release_port, start_on_free_port
from pytest_aegis.session import SessionState

if TYPE_CHECKING:  # the backends start what this pool hands out
    from pytest_aegis.backends.base import Backend
    from pytest_aegis.natsd.cluster import ClusterLayout, NatsCluster
    from pytest_aegis.natsd.partition import RouteProxies


class NatsPool:
    def __init__(
        self,
        backend: Backend,
        session: SessionState,
        ca: Callable[[], AegisCA],
        *,
        keep: bool = False,
        connect_deadline: float = CONNECT_DEADLINE,
    ) -> None:
        self._backend = backend
        self._connect_deadline = connect_deadline
        self._session = session
        self._ca = ca
        self._keep = keep
        self._shared: dict[NatsSpec, NatsServer] = {}
        self.servers: list[NatsServer] = []
        self._starting: concurrent.futures.ThreadPoolExecutor | None = None
        self._clusters: list[NatsCluster] = []
        #: What :meth:`start` hands out, for the security matrix: ``single``, or ``cluster`` where
        #: one handle stands for a cluster's nodes (the external backend given several URLs).
        self.topology = "single"

    @property
    def _starter(self) -> concurrent.futures.ThreadPoolExecutor:
        """The thread that starts cluster nodes.  It lives until :meth:`close`, whichever thread
        asks for a cluster: a child's PR_SET_PDEATHSIG fires when the *thread* that spawned it
        ends, not only the process."""
        if self._starting is None:
            self._starting = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aegis-node")
        return self._starting

    def get(self, spec: NatsSpec) -> NatsServer:
        """The shared server for ``spec``, started if this is its first use."""
        server = self._shared.get(spec)
        if server is None:
            server = self._shared[spec] = self.start(spec)
        elif not server.is_running:
            # A test stopped or killed it: start it again (same port and store)
            # rather than hand the next test a dead server.
            server.restart()
        return server

    def shared(self) -> list[NatsServer]:
        """The shared servers started so far (one per spec asked for with :meth:`get`)."""
        return list(self._shared.values())

    def start(self, spec: NatsSpec, *, name: str | None = None) -> NatsServer:
        """A new server for ``spec``, not shared with anyone."""
        name = name or f"{re.sub(r'[^a-z0-9]+', '-', spec.label.lower()).strip('-')}-{len(self.servers) + 1}"
        directory = self._session.new_dir(f"nats-{name}")
        material = self._backend.nats_material(spec, directory / "material", self._ca)
        runtime = self._backend.start_nats(material, name=name, directory=directory)
        server = NatsServer(runtime, material, connect_deadline=self._connect_deadline)
        server.topology = self.topology
        self.servers.append(server)
        record.ran(material.spec, self.topology)
        return server

    def start_cluster(self, spec: NatsSpec, size: int) -> NatsCluster:
        """A new cluster of ``size`` nodes of ``spec`` (routes secured like the clients' side),
        returned once every node accepts clients (not yet healthy: see
        :meth:`NatsCluster.wait_until_healthy`)."""
        from pytest_aegis.natsd.cluster import ClusterEntry, ClusterLayout, NatsCluster
        from pytest_aegis.natsd.partition import RouteProxies

        name = f"cluster-{len(self.servers) + 1}"
        directory = self._session.new_dir(f"nats-{name}")
        material = self._backend.nats_material(spec, directory / "material", self._ca)
        routes_tls = self._ca().server_cert_files("valid") if spec.tls else None
        layout = ClusterLayout.new(
            size, secured=spec.tls or spec.auth != "none", route_tls=routes_tls, ca_file=material.ca_file
        )
        routes = RouteProxies(layout.route_ports, layout.name)  # partition() cuts routes there
        layout.via, layout.advertise_port = routes.ports, routes.nowhere_port

        def start(index: int) -> NatsServer:
            node = dataclasses.replace(material, cluster=layout, node_index=index)
            return self._start_node(node, layout, routes, f"{layout.name}-n{index + 1}", directory)

        # One after another, each to its route listener, so that a node's routes to the nodes
        # before it connect at once and no two nodes dial each other at the same moment: then
        # nats-server can drop both connections (its route.go, reConnectToRoute), and the pair
        # has no route until a retry a second later.  (Their routes to it, refused while it was
        # not up, come back on their retry as duplicates of the one it made, and are closed.)
        nodes: list[NatsServer] = []
        try:
            for index in range(size):
                nodes.append(self._starter.submit(start, index).result())
        except BaseException:
            for node in nodes:
                node.stop()
            routes.close()
            raise
        first = nodes[0]
        entry = ClusterEntry(nodes, first.runtime, first.material, connect_deadline=self._connect_deadline)
        for server in (*nodes, entry):
            server.topology = "cluster"
        record.ran(material.spec, "cluster")

        def grow() -> NatsServer:
            """One more node, routing to the others (their routes to it come from its own)."""
            layout.route_ports.append(lease_port())
            routes.add_node(layout.route_ports)
            layout.via = routes.ports
            node = start(len(nodes))
            node.topology = "cluster"
            nodes.append(node)  # the entry's list too: its URLs name the new node
            return node

        cluster = NatsCluster(nodes, layout, entry, routes, grow=grow)
        self._clusters.append(cluster)
        return cluster

    def _start_node(
        self, material: NatsMaterial, layout: ClusterLayout, routes: RouteProxies, name: str, directory: Path
    ) -> NatsServer:
        """One node on the layout's route port; on a route port a program outside the harness took
        meanwhile, again on a fresh one (:func:`start_on_free_port`)."""

        def start(port: int) -> NatsServer:
            layout.route_ports[material.node_index] = port
            routes.retarget(material.node_index, port)
            node_directory = directory / name
            node_directory.mkdir(mode=0o700, exist_ok=True)
            runtime = self._backend.start_nats(material, name=name, directory=node_directory)
            server = NatsServer(runtime, material, connect_deadline=self._connect_deadline)
            self.servers.append(server)
            return server

        first_port = layout.route_ports[material.node_index]
        try:
            return start(first_port)
        except Exception as exc:
            if not port_was_taken(exc):
                raise
            release_port(first_port)
        return start_on_free_port(start, attempts=PORT_ATTEMPTS - 1)

    def retire(self, server: NatsServer) -> None:
        """Stop one unshared server for good (its test is over) and give up its ports; with keep,
        leave it running for :meth:`close` to report."""
        if self._keep or server not in self.servers:
            return
        self.servers.remove(server)
        if server.is_paused:
            with contextlib.suppress(Exception):
                server.resume()
        with contextlib.suppress(Exception):
            server.stop()
        for port in server.ports:
            release_port(port)

    def close(self) -> list[NatsServer]:
        """Stop every server (or, with keep, leave them running, resumed if a test left them
        paused); return those left running."""
        kept = []
        for server in self.servers:
            if server.is_paused:
                with contextlib.suppress(Exception):
                    server.resume()
            if self._keep and server.is_running:
                kept.append(server)
            else:
                with contextlib.suppress(Exception):
                    server.stop()
                for port in server.ports:  # leased (pytest_aegis.ports) for restarts: none comes now
                    release_port(port)
        for cluster in self._clusters:  # their nodes were stopped above; their route proxies now
            if cluster.routes is not None:
                cluster.routes.close()
            for port in cluster.layout.route_ports:
                release_port(port)
        self._clusters.clear()
        self.servers.clear()
        self._shared.clear()
        if self._starting is not None:  # after the stops: its threads spawned some of them
            self._starting.shutdown(wait=False)
            self._starting = None
        return kept
