"""What the nodes of a cluster say through their monitoring endpoints (``/routez``, ``/jsz``,
``/healthz``), and when that makes the cluster healthy: pure reads, no client."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_aegis.natsd.monitor import monitor_get


@dataclass(frozen=True)
class NodeHealth:
    """What one live node said: its name, the nodes it routes to, its meta leader, ``/healthz``."""

    name: str
    routed_to: frozenset[str]
    meta_leader: str | None
    healthz: str
    #: As the meta leader sees them: the other nodes that are current (``0`` on followers).
    current_peers: frozenset[str] = frozenset()
    #: As the meta leader sees them: the other nodes in the meta group, current or not.
    meta_peers: frozenset[str] = frozenset()


def read_health(name: str, monitor_url: str) -> NodeHealth:
    """Node ``name``'s health from its monitoring endpoint; :class:`OSError` if it does not answer."""
    routes = monitor_get(monitor_url, "/routez").get("routes") or []
    meta = monitor_get(monitor_url, "/jsz").get("meta_cluster") or {}
    try:
        healthz = str(monitor_get(monitor_url, "/healthz").get("status"))
    except OSError as exc:  # 503 while JetStream is not current
        healthz = f"not ok ({exc})"
    replicas = meta.get("replicas") or []
    return NodeHealth(
        name=name,
        routed_to=frozenset(str(route.get("remote_name")) for route in routes),
        meta_leader=meta.get("leader") or None,
        healthz=healthz,
        current_peers=frozenset(str(peer.get("name")) for peer in replicas if peer.get("current")),
        meta_peers=frozenset(str(peer.get("name")) for peer in replicas),
    )


def agreed_leader(seen: list[NodeHealth]) -> NodeHealth | None:
    """The meta leader every node in ``seen`` names, when it is one of them (``None`` otherwise:
    no leader, nodes that disagree, or a leader outside ``seen``)."""
    leaders = {node.meta_leader for node in seen}
    if len(leaders) != 1:
        return None
    return next((node for node in seen if node.name in leaders), None)


def all_healthy(seen: list[NodeHealth]) -> bool:
    """Every node in ``seen`` is healthy, routes to every other, and all name one meta leader
    among them, which sees every other one current (else placing an R3 stream can still fail
    with "no suitable peers")."""
    names = {node.name for node in seen}
    leader = agreed_leader(seen)
    return (
        bool(seen)
        and all(node.healthz == "ok" and names - {node.name} <= node.routed_to for node in seen)
        and leader is not None
        and names - {leader.name} <= leader.current_peers
    )
