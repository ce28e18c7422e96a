"""From a :class:`~pytest_aegis.natsd.spec.NatsSpec` to the *material* of one server: the
credentials its auth mode makes (passwords, tokens, nkeys, operator/account/user JWTs), its
certificate files, and what its clients need to match.

:func:`prepare` makes the material once per server, so a restart reuses the same credentials,
port and JetStream store; :func:`pytest_aegis.natsd.conf.render` writes the config from it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aegis.certs import AegisCA, CertFiles
from pytest_aegis.natsd.auth import AUTH_MODES, SYSTEM_USER, Identity
from pytest_aegis.natsd.operator import OperatorTrust
from pytest_aegis.natsd.spec import NatsSpec

if TYPE_CHECKING:  # the cluster module builds on this one
    from pytest_aegis.natsd.cluster import ClusterLayout


@dataclass
class NatsMaterial:
    """Everything a server of one spec needs, and what its clients need to match."""

    spec: NatsSpec
    directory: Path
    default: Identity
    users: dict[str, Identity] = field(default_factory=dict)
    #: The server config's authorization part (``authorization { ... }``).
    server_config: dict[str, Any] = field(default_factory=dict)
    operator: OperatorTrust | None = None
    server_files: CertFiles | None = None
    ca_file: Path | None = None
    client_tls: ssl.SSLContext | None = None
    client_cert_files: CertFiles | None = None
    #: A cluster node's routes (``None``: a single server) and its index in the cluster.
    cluster: ClusterLayout | None = None
    node_index: int = 0
    #: The session CA that issued the server's certificate (``None`` without TLS): a reload issues
    #: the new one from it.
    ca: AegisCA | None = field(default=None, repr=False)
    #: The system account's user (``None`` in the ``none`` and ``token`` modes).
    system: Identity | None = None

    def identity(self, name: str | None) -> Identity:
        if name is None or name == self.default.name:
            return self.default
        if self.system is not None and name == self.system.name:
            return self.system
        try:
            return self.users[name]
        except KeyError:
            names = [self.default.name, *self.users, *([self.system.name] if self.system else [])]
            hint = (
                f" (auth={self.spec.auth!r} has no system-account user: nats-server allows one only "
                "beside users, so with auth='userpass', 'nkey' or 'jwt')"
                if name == SYSTEM_USER
                else ""
            )
            raise KeyError(f"no user {name!r} on this server; its users: {', '.join(names)}{hint}") from None


def prepare(spec: NatsSpec, directory: Path, ca: AegisCA | None) -> NatsMaterial:
    """Make the credentials (by the spec's auth mode) and certificate files for a server of ``spec``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = AUTH_MODES[spec.auth].make(spec, directory)
    material = NatsMaterial(
        spec,
        directory,
        credentials.default,
        credentials.users,
        credentials.server_config,
        operator=credentials.operator,
        system=credentials.system,
    )
    if spec.tls:
        if ca is None:
            raise ValueError("a TLS server needs the session CA")
        material.ca = ca
        material.server_files = ca.server_cert_files(spec.server_cert)
        material.ca_file = ca.ca_path
        if spec.mtls:
            material.client_cert_files = ca.client_cert_files
            material.client_tls = ca.shared_mtls_client_context
        else:
            material.client_tls = ca.shared_client_context
    return material
