"""Shared by the plugin's and the reference service's integration tests: what a live NATS server
says of the connections it holds (its TLS handshake's certificate, its monitor's ``/connz``)."""

from __future__ import annotations

import json
import urllib.request

from nats.aio.client import Client

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
