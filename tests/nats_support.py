"""Shared by the plugin's and the reference service's integration tests: what a live NATS server
says of the connections it holds (its TLS handshake's certificate, its monitor's ``/connz``), and
a JetStream workload that records which writes were acknowledged."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from pytest_aegis import NatsCluster, NatsServer


def peer_serial(nc: Client) -> int:
    """The serial of the certificate the server presented to ``nc`` (its TLS handshake's)."""
    peer = nc._transport._io_writer.get_extra_info("peercert")  # type: ignore[union-attr]
    return int(peer["serialNumber"], 16)


def client_id(server: NatsServer, name: str) -> int:
    """The server's id (``cid``, in its log lines) of the connection named ``name``."""
    with urllib.request.urlopen(f"{server.monitor_url}/connz?limit=1024", timeout=2) as reply:
        connections = json.load(reply)["connections"]
    return next(int(conn["cid"]) for conn in connections if conn.get("name") == name)


def connected_node(cluster: NatsCluster, client_name: str) -> int:
    """The index of the node a client named ``client_name`` (a prefix) is connected to."""
    for index, node in enumerate(cluster.nodes):
        if not node.is_running:
            continue
        with urllib.request.urlopen(f"{node.monitor_url}/connz?limit=1024", timeout=2) as reply:
            names = [conn.get("name", "") for conn in json.load(reply)["connections"]]
        if any(name.startswith(client_name) for name in names):
            return index
    raise LookupError(f"no node has a client named {client_name}*")


#: What a publish may meet while a stream has no leader or its client moves to another node.
UNACKED = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


async def write_until(
    js: JetStreamContext, subject: str, stop: asyncio.Event, acked: list[str], *, prefix: str = "w"
) -> int:
    """Publish to ``subject``, one write at a time, each with its own ``Nats-Msg-Id``, until ``stop``
    is set; append the id of each write whose ack arrived to ``acked``.  A write that fails (no
    leader, a client moving nodes) is not retried: it counts as not acknowledged.  Returns the
    number of writes tried."""
    tried = 0
    while not stop.is_set():
        msg_id = f"{prefix}-{tried}"
        tried += 1
        try:
            await js.publish(subject, msg_id.encode(), timeout=2, headers={"Nats-Msg-Id": msg_id})
        except UNACKED:
            await asyncio.sleep(0.01)  # pace the retries of a workload that has no leader to write to
            continue
        acked.append(msg_id)
    return tried
