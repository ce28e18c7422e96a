"""Negative security assertions: a connection is rejected *for the stated
reason*, a subject is denied *by the server*.

A negative test that passes for the wrong reason is security theater: a
"wrong password" test that really failed on TLS proves nothing about auth.
So each helper classifies what happened and fails with what it actually saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from typing import Any, Literal

from nats.aio.client import Client

from pytest_aegis.errors import NatsConnectError, PlaintextRejected, describe_error
from pytest_aegis.matrix import record
from pytest_aegis.natsd.connect import classify, open_client
from pytest_aegis.natsd.server import NatsServer

Reason = Literal["auth", "tls", "protocol", "reset"]
REASONS: dict[str, str] = {
    "auth": "authorization violation (bad or missing credentials, expired or unknown identity)",
    "tls": "certificate verification or TLS handshake failure",
    "protocol": "protocol error sent by the server (e.g. maximum control line exceeded)",
    "reset": "the server dropped the connection mid-handshake without a reason (e.g. oversized input)",
}


def _server_log_since(server: NatsServer, offset: int) -> str:
    text = server.logs().encode()[offset:].decode(errors="replace").strip()
    return f"\nserver log during the attempt:\n{text}" if text else ""


async def _attempt(server: NatsServer, timeout: float, overrides: dict[str, Any]) -> BaseException | None:
    """Connect once (no reconnects) and return the error that settled it, ``None`` if accepted.
    A bare reset that the server logged as a TLS handshake error comes back as
    :class:`TLSRejectedByServer` carrying the server's reason."""
    if overrides.get("tls") is False:
        return await _plaintext_attempt(server, timeout)
    kwargs = server.connect_kwargs(**overrides) | {
        "allow_reconnect": False,
        "max_reconnect_attempts": 0,
        "connect_timeout": timeout,
    }
    try:
        client = await open_client(kwargs, timeout=timeout + 1, server=server)
    except NatsConnectError as exc:
        return exc.cause or exc
    await client.close()
    return None


async def _plaintext_attempt(server: NatsServer, timeout: float) -> BaseException | None:
    """Speak plaintext NATS to a TLS server (nats-py refuses to, so we do it raw)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(server.host, server.port), timeout)
    try:
        info_line = await asyncio.wait_for(reader.readline(), timeout)
        info = json.loads(info_line.decode().removeprefix("INFO ")) if info_line.startswith(b"INFO ") else {}
        creds = server.credentials
        connect = {"verbose": False, "pedantic": False, "lang": "python", "version": "aegis", "protocol": 1}
        connect |= {
            key: creds[src]
            for key, src in (("user", "user"), ("pass", "password"), ("auth_token", "token"))
            if src in creds
        }
        writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        await writer.drain()
        try:
            reply = await asyncio.wait_for(reader.read(4096), timeout)
        except (ConnectionResetError, BrokenPipeError) as exc:
            reply = f"connection reset ({exc})".encode()
        if b"PONG" in reply:
            return None
        text = reply.decode(errors="replace").strip() or "connection closed by the server"
        return PlaintextRejected(
            f"plaintext client rejected (server INFO tls_required={info.get('tls_required')}): {text}"
        )
    finally:
        writer.close()


async def assert_connection_rejected(
    server: NatsServer,
    *,
    reason: Reason | tuple[Reason, ...],
    match: str | None = None,
    timeout: float = 5.0,
    **overrides: Any,
) -> BaseException:
    """Assert that connecting to ``server`` with ``overrides`` fails for ``reason``.

    ``overrides`` change :meth:`NatsServer.connect_kwargs` (``password="wrong"``,
    ``token=None``, ``tls=other_context``; ``tls=False`` means a plaintext
    client).  ``reason`` is ``"auth"`` (authorization violation), ``"tls"``
    (certificate verification or handshake failure) or ``"protocol"`` (another
    protocol error from the server).  ``match`` is a regex the error text must
    contain (e.g. ``"certificate has expired"``).

    Returns the error.  Fails, saying what actually happened, if the connection
    succeeded or failed for another reason.
    """
    wanted = (reason,) if isinstance(reason, str) else tuple(reason)
    if not wanted or any(r not in REASONS for r in wanted):
        raise ValueError(f"reason must be one of {', '.join(REASONS)} (or a tuple of them); got {reason!r}")
    expected = " or ".join(f"{r!r} ({REASONS[r]})" for r in wanted)
    offset = server.log_size()
    error = await _attempt(server, timeout, overrides)
    if error is None:
        raise AssertionError(
            f"expected {server.name} to reject the connection for reason {expected}, but it was accepted "
            f"with overrides {sorted(overrides)}" + _server_log_since(server, offset)
        )
    actual = classify(error)
    if actual not in wanted:
        raise AssertionError(
            f"expected {server.name} to reject the connection for reason {expected}, "
            f"but it failed for reason {actual!r}: {describe_error(error)}"
            + _server_log_since(server, offset)
        )
    if match is not None and not re.search(match, str(error), re.I):
        raise AssertionError(
            f"{server.name} rejected the connection for reason {actual!r} as expected, "
            "but the error does not "
            f"match {match!r}: {describe_error(error)}"
        )
    by_mtls = _server_refused_client_cert(server, actual, error)
    record.rejected(server.spec, actual, by_mtls=by_mtls, topology=server.topology)
    return error


def _server_refused_client_cert(server: NatsServer, actual: str, error: BaseException) -> bool:
    """An mTLS server turned the client away (its certificate, or the lack of one), as opposed to
    the client not trusting the server or speaking plaintext."""
    if not server.spec.mtls or actual != "tls":
        return False
    return not isinstance(error, ssl.SSLCertVerificationError | PlaintextRejected)


class _ErrorTap:
    """Collects the async errors the server sends a connection while installed."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.errors: list[Exception] = []
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> _ErrorTap:
        self._original = self.nc._error_cb

        async def collect(error: Exception) -> None:
            self.errors.append(error)
            self.arrived.set()

        self.nc._error_cb = collect
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.nc._error_cb = self._original

    def violation(self, subject: str, action: str) -> Exception | None:
        verb = "publish to" if action == "publish" else "subscription to"
        # nats-py lower-cases the whole server error, the subject too ("$KV..." arrives as "$kv...").
        wanted = f'permissions violation for {verb} "{subject}"'.lower()
        return next((e for e in self.errors if wanted in str(e).lower()), None)

    def seen(self) -> str:
        return "; ".join(describe_error(e) for e in self.errors) or "no error at all"


async def _act(nc: Client, subject: str, action: str) -> Any:
    """Publish or subscribe, then flush; returns the subscription, if any."""
    if action not in ("publish", "subscribe"):
        raise ValueError(f"action must be 'publish' or 'subscribe'; got {action!r}")
    sub = None
    if action == "publish":
        await nc.publish(subject, b"aegis permission probe")
    else:
        sub = await nc.subscribe(subject)
    await nc.flush()
    return sub


async def assert_permission_denied(
    nc: Client, subject: str, action: Literal["publish", "subscribe"] = "publish", *, timeout: float = 2.0
) -> Exception:
    """Assert the server denies ``action`` on ``subject`` for this connection.

    Publishes (or subscribes), flushes, and waits (up to ``timeout``) for the
    server's ``Permissions Violation``; it usually arrives before the flush
    returns, but not always (operator mode can answer the PONG first).
    Returns the error; fails listing the errors it saw instead.
    """
    async with _ErrorTap(nc) as tap:
        sub = await _act(nc, subject, action)
        deadline = asyncio.get_running_loop().time() + timeout
        while (found := tap.violation(subject, action)) is None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            tap.arrived.clear()
            try:
                await asyncio.wait_for(tap.arrived.wait(), remaining)
            except TimeoutError:
                break
    if sub is not None:
        await sub.unsubscribe()
    if found is None:
        raise AssertionError(
            f"expected the server to deny {action} on {subject!r} (Permissions Violation), "
            f"but it was allowed (waited {timeout:.1f}s); errors seen: {tap.seen()}"
        )
    record.denied(nc, action)
    return found


async def assert_permitted(
    nc: Client, subject: str, action: Literal["publish", "subscribe"] = "publish"
) -> None:
    """The positive twin of :func:`assert_permission_denied`: the server allows it.

    Two flush round trips after the action give a late violation time to arrive.
    """
    async with _ErrorTap(nc) as tap:
        sub = await _act(nc, subject, action)
        await nc.flush()
    if sub is not None:
        await sub.unsubscribe()
    if tap.errors:
        raise AssertionError(
            f"expected {action} on {subject!r} to be allowed, but the server sent: {tap.seen()}"
        )
