"""Every NATS connection the harness opens goes through :func:`open_client`: one deadline for the
whole attempt, and a failure that says *why*.

nats-py's first ``connect()`` with reconnects allowed can wait forever: after a certificate
verification failure it closes the half-upgraded socket and awaits ``wait_closed()``, which never
resolves (nats-py 2.16), and a server that refuses every attempt is retried for as long as the
reconnect settings allow.  :func:`open_client` therefore

* gives up at an overall deadline, whatever nats-py is doing;
* stops at the first error that no retry can fix (an untrusted, expired or wrong-host certificate,
  a failed handshake, bad credentials), instead of reconnecting into it;
* raises :class:`NatsConnectError` with the classified reason (``tls``, ``auth``, ``protocol``,
  ``timeout``), the errors nats-py reported, and the server's log lines written during the attempt.

The classifiers (:func:`classify`, :func:`classify_lines`) are shared with the negative-test helpers; the
errors live in :mod:`pytest_aegis.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import nats.errors
from nats.aio.client import Client

from pytest_aegis.errors import (
    ConnectReason,
    NatsConnectError,
    PlaintextRejected,
    TLSRejectedByServer,
    WaitTimeout,
)
from pytest_aegis.waiting import async_wait_until

#: Reasons a retry cannot fix: the first such error ends the attempt.
FATAL_REASONS: frozenset[str] = frozenset({"tls", "auth"})
_AUTH_TEXT = re.compile(r"authorization violation|authentication (expired|revoked)|user authentication", re.I)
#: What the server or a client logs when a TLS handshake or a certificate check fails.
TLS_LINE = re.compile(
    r"TLS handshake error|certificate verif\w* failed|CERTIFICATE_VERIFY_FAILED|"
    r"client didn't provide a certificate|tls: bad certificate|unknown certificate authority|"
    r"TLS required|SSLError|SSL: ",
    re.I,
)
AUTH_LINE = re.compile(r"authorization violation|authentication error|user authentication", re.I)
PERMISSIONS_LINE = re.compile(r"permissions violation|subscription violation|publish violation", re.I)


class ServerLog(Protocol):
    """What :func:`open_client` reads from the server it connects to (a ``NatsServer``)."""

    @property
    def name(self) -> str: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...


def classify(error: BaseException) -> str:
    """``auth``, ``tls``, ``protocol``, ``reset`` or ``other`` for a connection error."""
    if isinstance(error, NatsConnectError):
        return error.reason if error.reason != "timeout" else "other"
    if isinstance(error, ssl.SSLError | PlaintextRejected | TLSRejectedByServer):
        return "tls"
    if isinstance(error, nats.errors.AuthorizationError):
        return "auth"
    if isinstance(error, nats.errors.NoServersError | nats.errors.TimeoutError):
        return "other"  # nats-py's summary after the errors that say why
    if isinstance(error, nats.errors.Error):
        text = str(error)
        if _AUTH_TEXT.search(text):
            return "auth"
        if "Secure Connection - TLS Required" in text:
            return "tls"
        return "protocol"
    if isinstance(error, ConnectionResetError | BrokenPipeError | nats.errors.UnexpectedEOF):
        return "reset"
    return "other"


def classify_lines(lines: Iterable[str]) -> set[str]:
    """The refusal reasons (``tls``, ``auth``, ``permissions``) that log lines show."""
    found: set[str] = set()
    for line in lines:
        if TLS_LINE.search(line):
            found.add("tls")
        if AUTH_LINE.search(line):
            found.add("auth")
        if PERMISSIONS_LINE.search(line):
            found.add("permissions")
    return found


def _cause(reason: str, errors: list[BaseException]) -> BaseException | None:
    """The error that shows ``reason`` (the server's account of a handshake, added last, first),
    else the last error that says more than "no servers available"."""
    for error in reversed(errors):
        if isinstance(error, TLSRejectedByServer):
            return error
    matching = [e for e in errors if classify(e) == reason]
    telling = [e for e in errors if not isinstance(e, nats.errors.NoServersError)]
    if matching:
        return matching[0]
    return (telling or errors)[-1] if errors else None


def abort(client: Client) -> None:
    """Drop a client whose connect failed.

    ``Client.close()`` can hang forever after a failed TLS upgrade (the writer's ``wait_closed``
    never resolves), so abort the sockets, the bare one and the TLS one, instead.
    """
    transport = getattr(client, "_transport", None)
    for name in ("_io_writer", "_bare_io_writer"):
        writer = getattr(transport, name, None)
        if writer is not None:
            writer.transport.abort()


def _lines_since(server: ServerLog | None, offset: int) -> list[str]:
    if server is None:
        return []
    return server.logs().encode()[offset:].decode(errors="replace").splitlines()


async def open_client(
    kwargs: Mapping[str, Any],
    *,
    timeout: float,
    server: ServerLog | None = None,
    target: str | None = None,
) -> Client:
    """Connect with ``nats.connect`` keywords ``kwargs`` and return the client, or raise
    :class:`NatsConnectError` within ``timeout`` seconds (plus at most ~1.5 s to collect the
    server's side of a failed handshake).

    A caller's ``error_cb`` still sees every error.  ``server`` (its log) makes the error carry the
    server's lines from the attempt; ``target`` names it (default: the server's name or first URL).
    """
    seen: list[BaseException] = []
    ports: set[int] = set()  # this client's local ports: the server's log lines name them
    settled = asyncio.Event()
    caller_cb: Callable[[Exception], Awaitable[None]] | None = kwargs.get("error_cb")

    async def on_error(error: Exception) -> None:
        if not connecting.done():  # the client keeps this callback: afterwards it only forwards
            seen.append(error)
            ports.update(_local_ports(client))
            if classify(error) in FATAL_REASONS:
                settled.set()
        if caller_cb is not None:
            await caller_cb(error)

    offset = server.log_size() if server is not None else 0
    client = Client()
    connecting = asyncio.ensure_future(client.connect(**{**kwargs, "error_cb": on_error}))
    refused = asyncio.ensure_future(settled.wait())
    try:
        await asyncio.wait({connecting, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refused.cancel()
    timed_out = not connecting.done() and not settled.is_set()
    if connecting.done() and not connecting.cancelled():
        error = connecting.exception()
        if error is None:
            return client
        if all(error is not e for e in seen):
            seen.append(error)
    ports.update(_local_ports(client))
    await _give_up(client, connecting)
    reason, errors = await _settle(seen, Attempt(server, offset, frozenset(ports)), timed_out=timed_out)
    servers = list(kwargs.get("servers") or ["?"])
    raise NatsConnectError(
        target or (server.name if server is not None else str(servers[0])),
        reason,
        timeout=timeout,
        cause=_cause(reason, errors),
        errors=errors,
        server_lines=_lines_since(server, offset),
        local_ports=frozenset(ports),
    )


async def _give_up(client: Client, connecting: asyncio.Future[None]) -> None:
    """Stop nats-py's attempt (it may be stuck closing a half-upgraded socket) and free the socket."""
    connecting.cancel()
    abort(client)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(connecting, 1.0)


def _local_ports(client: Client) -> set[int]:
    """The local ports of the client's current socket (the bare one and the TLS one)."""
    transport = getattr(client, "_transport", None)
    ports = set()
    for name in ("_bare_io_writer", "_io_writer"):
        writer = getattr(transport, name, None)
        try:
            sockname = writer.get_extra_info("sockname") if writer is not None else None
        except Exception:  # a transport that is already closed (asyncio's SSL one raises)
            continue
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            ports.add(int(sockname[1]))
    return ports


@dataclass(frozen=True)
class Attempt:
    """Where to find the server's side of one connection attempt: its log from ``offset`` on, in
    lines naming one of the client's local ``ports`` (a shared server logs other clients too)."""

    server: ServerLog | None
    offset: int
    ports: frozenset[int]

    def tls_error(self, line: str) -> bool:
        if "TLS handshake error" not in line:
            return False
        return not self.ports or any(f":{port} - " in line for port in self.ports)


async def _settle(
    seen: list[BaseException], attempt: Attempt, *, timed_out: bool
) -> tuple[ConnectReason, list[BaseException]]:
    """The reason of a failed attempt, from nats-py's errors and, for a bare reset or a timeout,
    from the server's own account of the handshake (TLS 1.3 rejects a client certificate after the
    client thinks the handshake is done, so the client sees only a reset)."""
    kinds = [classify(error) for error in seen]
    if "tls" in kinds:
        return "tls", seen
    if "auth" in kinds:
        return "auth", seen
    if attempt.server is not None and (timed_out or "reset" in kinds):
        line = await _server_tls_error(attempt)
        if line is not None:
            cause = _cause("reset", seen)
            explained = TLSRejectedByServer(f"{cause or 'no answer'}; the server logged: {line}")
            return "tls", [*seen, explained]
    if timed_out:
        return "timeout", seen
    if "protocol" in kinds:
        return "protocol", seen
    if "reset" in kinds:
        return "reset", seen
    return "unreachable" if any(isinstance(e, OSError) for e in seen) else "timeout", seen


async def _server_tls_error(attempt: Attempt, within: float = 1.0) -> str | None:
    """The server's "TLS handshake error" line about this attempt's connection, waiting up to
    ``within`` seconds for it (the server logs its side a moment after the client gave up)."""

    async def handshake_error() -> str | None:
        lines = _lines_since(attempt.server, attempt.offset)
        line = next((line for line in lines if attempt.tls_error(line)), None)
        return line.split("[ERR] ", 1)[-1] if line is not None else None

    with contextlib.suppress(WaitTimeout):
        return await async_wait_until(handshake_error, "the server's TLS handshake error", timeout=within)
    return None
