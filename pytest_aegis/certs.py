"""Certificates made fresh for each session, with trustme.  Nothing is checked in.

:class:`AegisCA` is what the ``aegis_ca`` fixture returns: the session's CA,
certificates it issues, SSL contexts that trust it, and ready-made *bad*
material for negative tests (an untrusted CA, expired and not-yet-valid
certificates, a certificate for the wrong host).  Keys and certificates are
written only into the session's private temporary directory (mode 0600).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # imported when the first CA is made, not when the plugin loads
    import trustme

SERVER_HOSTS = ("127.0.0.1", "localhost", "::1")
WRONG_HOST = "wrong-host.aegis.invalid"
ServerCertKind = Literal["valid", "expired", "not_yet_valid", "wrong_host", "untrusted"]
SERVER_CERT_KINDS: tuple[ServerCertKind, ...] = (
    "valid",
    "expired",
    "not_yet_valid",
    "wrong_host",
    "untrusted",
)


@dataclass(frozen=True)
class CertFiles:
    """A certificate chain and its private key on disk, as servers want them."""

    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _expired_window() -> tuple[dt.datetime, dt.datetime]:
    return _now() - dt.timedelta(days=30), _now() - dt.timedelta(days=1)


def _future_window() -> tuple[dt.datetime, dt.datetime]:
    return _now() + dt.timedelta(days=1), _now() + dt.timedelta(days=30)


def _verifying_context(trusted: trustme.CA, client_cert: trustme.LeafCert | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    trusted.configure_trust(ctx)
    if client_cert is not None:
        client_cert.configure_cert(ctx)
    return ctx


class AegisCA:
    """The session's certificate authority (a wrapped :class:`trustme.CA`).

    >>> ca = AegisCA(tmp_path)
    >>> ctx = ca.client_ssl_context()                 # trusts the session CA
    >>> files = ca.server_cert_files("expired")       # for a negative test
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        import trustme

        #: The session CA, as a :class:`trustme.CA`.
        self.ca = trustme.CA(organization_name="pytest-aegis session CA")
        #: The CA certificate as a PEM file (give it to servers and services).
        self.ca_path = self._write_pem("ca.pem", self.ca.cert_pem.bytes())
        self._rotations = itertools.count(1)

    # -- issuing -----------------------------------------------------------

    def issue_server_cert(
        self,
        *hosts: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        ca: trustme.CA | None = None,
    ) -> trustme.LeafCert:
        """A server certificate for ``hosts`` (default: 127.0.0.1, localhost, ::1)."""
        issuer = ca or self.ca
        return issuer.issue_cert(*(hosts or SERVER_HOSTS), not_before=not_before, not_after=not_after)

    def issue_client_cert(
        self,
        name: str,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        ca: trustme.CA | None = None,
    ) -> trustme.LeafCert:
        """A client certificate whose common name is ``name`` (for mTLS)."""
        issuer = ca or self.ca
        return issuer.issue_cert(
            f"{name}.clients.aegis.invalid", common_name=name, not_before=not_before, not_after=not_after
        )

    # -- contexts ----------------------------------------------------------

    def client_ssl_context(self, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """A client context that trusts *only* the session CA (certificate and
        hostname verification on), presenting ``client_cert`` if given.

        Not the system trust store: a test client that trusts every public CA
        proves less, and loading that store costs ~30 ms per context.
        """
        return _verifying_context(self.ca, client_cert)

    @functools.cached_property
    def client_cert_files(self) -> CertFiles:
        """:attr:`client_cert` on disk (for services that need a client cert file)."""
        return self.write_leaf(self.client_cert, "client-default")

    @functools.cached_property
    def shared_client_context(self) -> ssl.SSLContext:
        """One context trusting the session CA, shared by the servers' default
        clients (contexts are reusable; building one costs ~0.5 ms per server)."""
        return self.client_ssl_context()

    @functools.cached_property
    def shared_mtls_client_context(self) -> ssl.SSLContext:
        """As :attr:`shared_client_context`, presenting :attr:`client_cert`."""
        return self.client_ssl_context(self.client_cert)

    def untrusting_ssl_context(self, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """A verifying client context that trusts only :attr:`untrusted_ca`,
        i.e. *not* the session CA: for "client does not trust the CA" tests."""
        return _verifying_context(self.untrusted_ca, client_cert)

    # -- bad material for negative tests -------------------------------------

    @functools.cached_property
    def untrusted_ca(self) -> trustme.CA:
        """A second CA that nothing in the session trusts."""
        import trustme

        return trustme.CA(organization_name="pytest-aegis untrusted CA")

    @functools.cached_property
    def expired_cert(self) -> trustme.LeafCert:
        """A server certificate (right hosts, session CA) that expired yesterday."""
        not_before, not_after = _expired_window()
        return self.issue_server_cert(not_before=not_before, not_after=not_after)

    @functools.cached_property
    def not_yet_valid_cert(self) -> trustme.LeafCert:
        """A server certificate (right hosts, session CA) valid from tomorrow."""
        not_before, not_after = _future_window()
        return self.issue_server_cert(not_before=not_before, not_after=not_after)

    @functools.cached_property
    def wrong_host_cert(self) -> trustme.LeafCert:
        """A server certificate from the session CA for a host we never connect to."""
        return self.issue_server_cert(WRONG_HOST)

    @functools.cached_property
    def untrusted_server_cert(self) -> trustme.LeafCert:
        """A server certificate for the right hosts, issued by :attr:`untrusted_ca`."""
        return self.issue_server_cert(ca=self.untrusted_ca)

    @functools.cached_property
    def expired_client_cert(self) -> trustme.LeafCert:
        """A client certificate from the session CA that expired yesterday."""
        not_before, not_after = _expired_window()
        return self.issue_client_cert("expired-client", not_before=not_before, not_after=not_after)

    @functools.cached_property
    def untrusted_client_cert(self) -> trustme.LeafCert:
        """A client certificate issued by :attr:`untrusted_ca`."""
        return self.issue_client_cert("foreign-client", ca=self.untrusted_ca)

    @functools.cached_property
    def client_cert(self) -> trustme.LeafCert:
        """The default, valid client certificate for mTLS servers."""
        return self.issue_client_cert("aegis-client")

    # -- files ---------------------------------------------------------------

    def server_cert_files(self, kind: ServerCertKind = "valid") -> CertFiles:
        """Server certificate files of the given kind, written once per session."""
        return self._server_files(kind)

    @functools.cache  # noqa: B019 - one CA per session; the cache lives as long as it
    def _server_files(self, kind: ServerCertKind) -> CertFiles:
        leaf = {
            "valid": lambda: self.issue_server_cert(),
            "expired": lambda: self.expired_cert,
            "not_yet_valid": lambda: self.not_yet_valid_cert,
            "wrong_host": lambda: self.wrong_host_cert,
            "untrusted": lambda: self.untrusted_server_cert,
        }[kind]()
        return self.write_leaf(leaf, f"server-{kind}")

    def new_server_cert_files(self, kind: ServerCertKind = "valid") -> CertFiles:
        """Server certificate files of ``kind`` holding a certificate issued by this call: a new key
        and serial each time (what a rotation presents), unlike :meth:`server_cert_files`, which
        gives the session's one certificate per kind."""
        if kind not in SERVER_CERT_KINDS:
            raise ValueError(
                f"unknown server certificate kind {kind!r}; valid: {', '.join(SERVER_CERT_KINDS)}"
            )
        not_before = not_after = None
        if kind == "expired":
            not_before, not_after = _expired_window()
        elif kind == "not_yet_valid":
            not_before, not_after = _future_window()
        leaf = self.issue_server_cert(
            *((WRONG_HOST,) if kind == "wrong_host" else ()),
            not_before=not_before,
            not_after=not_after,
            ca=self.untrusted_ca if kind == "untrusted" else None,
        )
        return self.write_leaf(leaf, f"server-{kind}-{next(self._rotations)}")

    def write_leaf(self, leaf: trustme.LeafCert, name: str) -> CertFiles:
        """Write ``leaf``'s chain and key as ``<name>.pem`` / ``<name>.key`` (0600)."""
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return CertFiles(
            cert=self._write_pem(f"{name}.pem", chain),
            key=self._write_pem(f"{name}.key", leaf.private_key_pem.bytes()),
        )

    def _write_pem(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path
