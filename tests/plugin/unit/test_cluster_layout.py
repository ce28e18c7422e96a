"""A cluster's route layout: every node routes to every other, secured like the client side."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aegis.certs import CertFiles
from pytest_aegis.natsd.cluster import ClusterLayout
from pytest_aegis.natsd.partition import partition_groups


def test_each_node_listens_on_its_port_and_routes_to_the_others_with_credentials_and_tls() -> None:
    tls = CertFiles(Path("/ca/route.pem"), Path("/ca/route.key"))
    layout = ClusterLayout.new(3, secured=True, route_tls=tls, ca_file=Path("/ca/ca.pem"))
    layout.route_ports[:] = [7001, 7002, 7003]
    block = layout.block(1)
    assert block["listen"] == "127.0.0.1:7002"
    secret = f"{layout.route_user}:{layout.route_password}@"
    assert block["routes"] == [f"nats-route://{secret}127.0.0.1:7001", f"nats-route://{secret}127.0.0.1:7003"]
    assert block["authorization"]["user"] == "aegis-route" and len(str(layout.route_password)) >= 20
    assert block["tls"] == {
        "cert_file": "/ca/route.pem",
        "key_file": "/ca/route.key",
        "ca_file": "/ca/ca.pem",
        "verify": True,
        "timeout": 2,
    }
    assert block["no_advertise"] is True


def test_a_plain_cluster_has_plain_routes() -> None:
    layout = ClusterLayout.new(2, secured=False, route_tls=None, ca_file=None)
    block = layout.block(0)
    assert "authorization" not in block and "tls" not in block
    assert block["routes"] == [f"nats-route://127.0.0.1:{layout.route_ports[1]}"]


@pytest.mark.parametrize("size", [0, 1, 10])
def test_sizes_outside_2_to_9_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match=rf"size={size}: a cluster has 2 to 9 nodes"):
        ClusterLayout.new(size, secured=False, route_tls=None, ca_file=None)


def test_partition_groups_are_checked() -> None:
    assert partition_groups([[0]], 3) == [{0}, {1, 2}]
    with pytest.raises(ValueError, match=r"no node \[3\] in a cluster of 3"):
        partition_groups([[3]], 3)
    with pytest.raises(ValueError, match=r"node\(s\) \[1\] in more than one group"):
        partition_groups([[0, 1], [1, 2]], 3)
    with pytest.raises(ValueError, match="at least two groups"):
        partition_groups([[0, 1, 2]], 3)
