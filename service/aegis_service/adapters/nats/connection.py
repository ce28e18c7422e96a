"""NATS connection: initial connect with exponential backoff + full jitter, then nats-py's own infinite
reconnect (jittered too), with disconnect/reconnect callbacks logged and reflected in
:class:`ConnectionState`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import ParseResult

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.client import Server

from aegis_service.adapters.nats.tls import build_ssl_context
from aegis_service.backoff import full_jitter
from aegis_service.domain.errors import describe_error
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)

CONNECT_BACKOFF_BASE = 0.1
CONNECT_BACKOFF_CAP = 5.0
RECONNECT_BACKOFF_BASE = 0.25
RECONNECT_BACKOFF_CAP = 2.0
PER_ATTEMPT_TIMEOUT = 5.0
DRAIN_TIMEOUT = 2


class ConnectError(Exception):
    """The initial connection failed for good (timeout exhausted or a non-retryable error)."""


class TlsNotNegotiatedError(Exception):
    """TLS is configured but the server let the connection proceed in plaintext."""


def redact_url(url: str | ParseResult | None) -> str:
    """``scheme://host:port`` without credentials."""
    if url is None:
        return ""
    text = url.geturl() if isinstance(url, ParseResult) else url
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    return f"{scheme}://{rest.rpartition('@')[2]}"


def is_fatal_connect_error(exc: BaseException) -> bool:
    """Errors that retrying cannot fix: bad credentials, untrusted server certificate, TLS downgrade."""
    if isinstance(exc, ssl.SSLCertVerificationError | TlsNotNegotiatedError | nats.errors.AuthorizationError):
        return True
    if isinstance(exc, nats.errors.SecureConnRequiredError | nats.errors.SecureConnWantedError):
        return True
    text = str(exc).lower()
    return "authorization violation" in text or "authentication" in text or "user authentication" in text


def connection_uses_tls(nc: NATS) -> bool | None:
    """Whether the live socket is TLS (``None`` if it cannot be told). nats-py only upgrades when the
    server asks for TLS, so with TLS configured this guards against a silent plaintext downgrade."""
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    if writer is None:
        return None
    return writer.get_extra_info("ssl_object") is not None


@dataclass
class ConnectionState:
    connected: bool = False
    url: str = ""
    disconnected_since: float | None = None
    reconnects: int = 0
    last_error: str | None = None
    listeners: list[Callable[[], None]] = field(default_factory=list)


class NatsConnection:
    """Owns the nats-py client and its state. ``lost`` is set when the connection is closed for good
    (e.g. credentials revoked during a reconnect), which the app treats as fatal."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._nc: NATS | None = None
        self._closing = False
        self._attempt_errors: list[Exception] | None = None
        #: The server's "permissions violation" errors on this connection, as nats-py words them.
        self.permission_errors: list[str] = []
        self.state = ConnectionState(url=redact_url(settings.servers[0]))
        self.lost = asyncio.Event()

    @property
    def client(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("NATS is not connected yet")
        return self._nc

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def url(self) -> str:
        if self._nc is not None and self._nc.connected_url is not None:
            return redact_url(self._nc.connected_url)
        return self.state.url

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        self.state.listeners.append(listener)

    # -- initial connect ---------------------------------------------------------------------------

    async def connect(self, deadline: float) -> NATS:
        """Connect, retrying with full-jitter backoff until ``deadline`` (a ``clock()`` value)."""
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            try:
                nc = await self._attempt(max(0.2, min(PER_ATTEMPT_TIMEOUT, remaining)))
            except Exception as exc:
                reason = describe_error(exc)
                self.state.last_error = reason
                if is_fatal_connect_error(exc):
                    raise ConnectError(f"cannot connect to NATS at {self.state.url}: {reason}") from exc
                delay = full_jitter(attempt - 1, CONNECT_BACKOFF_BASE, CONNECT_BACKOFF_CAP, rng=self._rng)
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise ConnectError(
                        f"cannot connect to NATS at {self.state.url} after {attempt} attempt(s) within "
                        f"AEGIS_CONNECT_TIMEOUT={self._settings.connect_timeout:g}s: {reason}"
                    ) from exc
                delay = min(delay, remaining)  # the last attempt happens at the deadline
                logger.warning(
                    "NATS connect attempt %d failed (%s); retrying in %.2fs", attempt, reason, delay
                )
                await asyncio.sleep(delay)
                continue
            self._nc = nc
            self.state.connected = True
            self.state.url = self.url
            logger.info("connected to NATS at %s (attempt %d)", self.state.url, attempt)
            return nc

    async def _attempt(self, timeout: float) -> NATS:
        self._attempt_errors = []
        nc = NATS()
        try:
            # One pass over the servers: nats-py's own retry is disabled for the initial connect (we back
            # off with jitter instead) and switched to infinite reconnects once connected.
            await nc.connect(**self._options(timeout))
        except nats.errors.NoServersError:
            await _quiet_close(nc)
            errors = self._attempt_errors
            raise (errors[-1] if errors else ConnectionError("no NATS server reachable")) from None
        except BaseException:
            await _quiet_close(nc)
            raise
        finally:
            self._attempt_errors = None
        if self._settings.tls_enabled and connection_uses_tls(nc) is False:
            await _quiet_close(nc)
            raise TlsNotNegotiatedError(
                "TLS is configured (tls:// URL or AEGIS_NATS_TLS_*) but the server did not negotiate TLS"
            )
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        return nc

    def _options(self, timeout: float) -> dict[str, Any]:
        s = self._settings
        options: dict[str, Any] = {
            "servers": s.servers,
            "name": f"{s.service_name}/{s.instance_id}",
            "connect_timeout": timeout,
            "allow_reconnect": False,
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0,
            "drain_timeout": DRAIN_TIMEOUT,
            # A half-open connection (a peer or path gone silent) is found by pings, not by TCP.
            "ping_interval": s.ping_interval,
            "max_outstanding_pings": s.max_outstanding_pings,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            "reconnect_to_server_handler": self._pick_reconnect_server,
        }
        context = build_ssl_context(s)
        if context is not None:
            options["tls"] = context
        if s.tls_hostname:
            options["tls_hostname"] = s.tls_hostname
        if s.nats_user is not None and s.nats_password is not None:
            options["user"] = s.nats_user
            options["password"] = s.nats_password.get_secret_value()
        elif s.nats_token is not None:
            options["token"] = s.nats_token.get_secret_value()
        elif s.nats_nkey_seed_file is not None:
            options["nkeys_seed"] = str(s.nats_nkey_seed_file)
        elif s.nats_creds_file is not None:
            options["user_credentials"] = str(s.nats_creds_file)
        return options

    # -- callbacks ---------------------------------------------------------------------------------

    def _pick_reconnect_server(
        self, servers: list[Server], _info: dict[str, Any]
    ) -> tuple[Server | None, float]:
        server = min(servers, key=lambda srv: srv.reconnects)
        delay = full_jitter(server.reconnects, RECONNECT_BACKOFF_BASE, RECONNECT_BACKOFF_CAP, rng=self._rng)
        return server, delay

    async def _on_error(self, exc: Exception) -> None:
        self.state.last_error = describe_error(exc)
        if "permissions violation" in str(exc).lower():
            self.permission_errors.append(str(exc))
        if self._attempt_errors is not None:
            self._attempt_errors.append(exc)
            logger.debug("NATS connect error: %s", self.state.last_error)
        elif self._closing or not self.state.connected:
            logger.debug("NATS error: %s", self.state.last_error)  # reconnect attempts: don't flood the log
        else:
            logger.warning("NATS error: %s", self.state.last_error)

    async def _on_disconnected(self) -> None:
        if not self.state.connected:
            return
        self.state.connected = False
        self.state.disconnected_since = self._clock()
        if not self._closing:
            logger.warning("disconnected from NATS at %s; reconnecting", self.state.url)

    async def _on_reconnected(self) -> None:
        nc = self._nc
        if nc is not None and self._settings.tls_enabled and connection_uses_tls(nc) is False:
            logger.error("reconnected without TLS although TLS is configured; closing the connection")
            self.state.last_error = "server did not negotiate TLS on reconnect"
            await _quiet_close(nc)
            return
        self.state.connected = True
        self.state.disconnected_since = None
        self.state.reconnects += 1
        self.state.url = self.url
        logger.info("reconnected to NATS at %s", self.state.url)
        for listener in list(self.state.listeners):
            listener()

    async def _on_closed(self) -> None:
        if self._nc is None:  # a failed initial attempt being cleaned up
            return
        self.state.connected = False
        if not self._closing:
            logger.error("NATS connection closed for good: %s", self.state.last_error or "no reason given")
            self.lost.set()

    # -- shutdown ----------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Drain (flush pending replies, unsubscribe) and close, falling back to a plain close."""
        self._closing = True
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), timeout)
        except Exception as exc:
            logger.debug("NATS drain failed: %s", describe_error(exc))
        finally:
            await _quiet_close(nc)


async def _quiet_close(nc: NATS) -> None:
    try:
        await asyncio.wait_for(nc.close(), 1.0)
    except Exception as exc:
        logger.debug("closing NATS client: %s", describe_error(exc))
