"""TLS client context for the NATS connection, from the settings. Verification is always on."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis_service.settings import Settings


class TlsConfigError(Exception):
    """TLS material could not be loaded; the message names the variable."""


def build_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """Return a verifying client context, or ``None`` when no TLS setting is present.

    With ``AEGIS_NATS_TLS_CA`` the server is verified against that bundle only; without it (tls:// URL)
    the system trust store is used. Hostname checking and certificate verification are never disabled.
    """
    if not settings.tls_enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if settings.tls_ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_verify_locations(cafile=str(settings.tls_ca))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsConfigError(
                f"AEGIS_NATS_TLS_CA: cannot load CA bundle {settings.tls_ca}: {_reason(exc)}"
            ) from None
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            context.load_cert_chain(certfile=str(settings.tls_cert), keyfile=str(settings.tls_key))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsConfigError(
                f"AEGIS_NATS_TLS_CERT/AEGIS_NATS_TLS_KEY: cannot load client certificate {settings.tls_cert} "
                f"with key {settings.tls_key}: {_reason(exc)}"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__
