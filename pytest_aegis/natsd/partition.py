"""Network partitions of a cluster: every route goes through a proxy of its own, so the routes
between groups of nodes can be cut while the clients' connections are untouched.

One :class:`~pytest_aegis.faults.proxy.FaultProxy` per ordered pair of nodes: node ``i`` routes
to node ``j`` through proxy ``(i, j)`` (the layout's ``via``), with route pooling off, so each pair
has one route connection and it crosses one of the pair's two proxies.  A partition refuses new
connections on, and resets, every proxy between nodes of different groups; healing removes that.
All the proxies share one loop thread.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterable

from pytest_aegis.faults.loop import LoopThread
from pytest_aegis.faults.proxy import Fault, FaultProxy
from pytest_aegis.ports import LOOPBACK


class RouteProxies:
    """The route proxies of one cluster (made before its nodes start: their configs name them)."""

    def __init__(self, route_ports: list[int], name: str) -> None:
        self._loop = LoopThread(f"aegis-routes-{name}")
        self.proxies: dict[tuple[int, int], FaultProxy] = {}
        self._faults: list[Fault] = []
        # Bound, never listening: connects to it are refused (the address the nodes gossip).
        self._nowhere = socket.socket()
        self._nowhere.bind((LOOPBACK, 0))
        self.nowhere_port: int = self._nowhere.getsockname()[1]
        self._name = name
        try:
            for source, target in itertools.permutations(range(len(route_ports)), 2):
                self._add(source, target, route_ports[target])
        except BaseException:
            self.close()
            raise

    def _add(self, source: int, target: int, port: int) -> None:
        self.proxies[(source, target)] = FaultProxy(
            LOOPBACK, port, name=f"{self._name}-route-{source + 1}-{target + 1}", loop=self._loop
        )

    def add_node(self, route_ports: list[int]) -> None:
        """Proxies to and from the last node of ``route_ports`` (one that joins the cluster)."""
        new = len(route_ports) - 1
        for other in range(new):
            self._add(new, other, route_ports[other])
            self._add(other, new, route_ports[new])

    @property
    def ports(self) -> dict[tuple[int, int], int]:
        return {pair: proxy.port for pair, proxy in self.proxies.items()}

    def retarget(self, node: int, port: int) -> None:
        """Node ``node`` listens for routes on ``port`` now (its first port was taken)."""
        for (_, target), proxy in self.proxies.items():
            if target == node:
                proxy.target_port = port

    def partition(self, groups: list[set[int]]) -> None:
        """Cut every route between nodes of different ``groups`` (and keep them cut)."""
        self.heal()
        side = {node: index for index, group in enumerate(groups) for node in group}
        for (source, target), proxy in self.proxies.items():
            if side[source] != side[target]:
                self._faults.append(proxy.refuse())
                proxy.cut()

    def latency(self, node: int, ms: float, jitter_ms: float = 0) -> list[Fault]:
        """Delay every route byte to and from ``node`` by ``ms`` (± ``jitter_ms``) until the
        faults returned are removed, or :meth:`heal`."""
        faults = [
            proxy.latency(ms, jitter_ms)
            for (source, target), proxy in self.proxies.items()
            if node in (source, target)
        ]
        self._faults.extend(faults)
        return faults

    def heal(self) -> None:
        """Let every route connect again, at full speed."""
        faults, self._faults = self._faults, []
        for fault in faults:
            fault.remove()

    def close(self) -> None:
        """Close every proxy and their loop (each close is idempotent: later calls do nothing)."""
        for proxy in self.proxies.values():
            proxy.close()
        self._loop.close()
        self._nowhere.close()


def partition_groups(groups: Iterable[Iterable[int]], size: int) -> list[set[int]]:
    """The groups a partition makes: those given, and the nodes they leave out as one more;
    :class:`ValueError` naming a bad or repeated index."""
    made: list[set[int]] = []
    seen: set[int] = set()
    for group in groups:
        nodes = set(group)
        if bad := sorted(node for node in nodes if not isinstance(node, int) or not 0 <= node < size):
            raise ValueError(f"partition: no node {bad} in a cluster of {size} (indexes 0 to {size - 1})")
        if twice := sorted(nodes & seen):
            raise ValueError(f"partition: node(s) {twice} in more than one group")
        seen |= nodes
        made.append(nodes)
    if rest := set(range(size)) - seen:
        made.append(rest)
    if len(made) < 2:
        raise ValueError("partition: give at least two groups (or one, and the others form the second)")
    return made
