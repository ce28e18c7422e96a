"""JetStream membership of a running cluster: removing a node's peer from the meta group, as an
operator does for a server that is gone for good (``nats server raft peer-remove``).

The request goes to ``$JS.API.SERVER.REMOVE`` as the system account's user (the auth modes that
can have one: :func:`~pytest_aegis.natsd.auth._system_account`); JetStream then moves the node's
stream and consumer replicas to other nodes where it can.  :func:`remove_peer` returns once the
meta leader no longer lists the node."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import nats.errors

from pytest_aegis.errors import PeerRemovalError, WaitTimeout
from pytest_aegis.natsd.auth import SYSTEM_USER
from pytest_aegis.natsd.health import NodeHealth, agreed_leader
from pytest_aegis.natsd.monitor import MONITOR_TIMEOUT
from pytest_aegis.waiting import async_wait_until

if TYPE_CHECKING:
    from pytest_aegis.natsd.cluster import NatsCluster

#: JetStream's API subject for removing a server's peer (system account only).
REMOVE = "$JS.API.SERVER.REMOVE"


def removed(seen: list[NodeHealth], name: str) -> bool:
    """The meta leader among ``seen`` (the live nodes but ``name``) no longer lists ``name``."""
    leader = agreed_leader(seen)
    return leader is not None and name not in leader.meta_peers


async def remove_peer(cluster: NatsCluster, index: int, *, timeout: float) -> None:
    """Remove node ``index``'s peer from ``cluster``'s JetStream meta group; until the meta leader
    no longer lists it (``timeout`` seconds for all of it).

    Only the meta leader answers the request, so it is sent once the other live nodes agree on
    one: right after the node that led the meta group stops, they elect another first (seconds)."""
    name = _removable(cluster, index)
    deadline = time.monotonic() + timeout
    await _others_until(
        cluster,
        name,
        deadline,
        lambda seen: agreed_leader(seen) is not None,
        f"the live nodes of cluster {cluster.name} but {name} to agree on a meta leader among them",
    )
    await _request_removal(cluster, index, name, deadline)
    await _others_until(
        cluster,
        name,
        deadline,
        lambda seen: removed(seen, name),
        f"the meta leader of cluster {cluster.name} to no longer list {name}",
    )


def _removable(cluster: NatsCluster, index: int) -> str:
    """Node ``index``'s name, when the harness can ask for its removal."""
    if not 0 <= index < cluster.size:
        raise ValueError(f"remove_peer: no node {index} in cluster {cluster.name} of {cluster.size}")
    if cluster.entry.material.system is None:
        raise PeerRemovalError(
            f"cluster {cluster.name}: removing a peer needs the system account's user, which "
            f"auth={cluster.entry.spec.auth!r} cannot have (nats-server allows one only beside named "
            "users); use auth='userpass', 'nkey' or 'jwt'"
        )
    return cluster.nodes[index].name


async def _others_until(
    cluster: NatsCluster, name: str, deadline: float, ok: Callable[[list[NodeHealth]], bool], what: str
) -> None:
    """Wait until the health of every live node but ``name`` is ``ok``, by ``deadline``."""

    def health() -> list[NodeHealth]:
        return [seen for seen in cluster.health() if seen.name != name]

    try:
        await async_wait_until(
            lambda: asyncio.to_thread(health),
            what,
            timeout=max(deadline - time.monotonic(), 0),
            ok=ok,
            transient=(OSError,),
            interval=0.02,
        )
    except WaitTimeout as exc:
        raise PeerRemovalError(str(exc)) from None


async def _request_removal(cluster: NatsCluster, index: int, name: str, deadline: float) -> None:
    """Send ``$JS.API.SERVER.REMOVE`` for ``name`` as the system user; JetStream's refusal raised."""

    def left() -> float:
        return max(deadline - time.monotonic(), MONITOR_TIMEOUT)

    nc = await cluster.connect(as_user=SYSTEM_USER, deadline=left())
    try:
        reply = await nc.request(REMOVE, json.dumps({"peer": name}).encode(), timeout=left())
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        raise PeerRemovalError(
            f"cluster {cluster.name}: no answer to {REMOVE} for {name} ({type(exc).__name__}) although "
            "the live nodes agreed on a meta leader; see the nodes' logs for a new election"
        ) from None
    finally:
        await nc.close()
    error = json.loads(reply.data).get("error")
    if error:
        raise PeerRemovalError(
            f"cluster {cluster.name}: JetStream refused to remove node {index} ({name}): "
            f"{error.get('description')} (err_code {error.get('err_code')})"
        )
