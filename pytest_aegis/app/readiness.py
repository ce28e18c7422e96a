"""Whether an instance of the service under test became healthy, and if not, why.

:func:`wait_healthy` probes the app's health contract (:mod:`pytest_aegis.app.health`) until it
passes (or the deadline), and stops at once when the process exits or when the logs show that the
server refused the service's health subscription (a service that never answers need not be waited
out).  :func:`refusal` reads a refusal (``tls``, ``auth``, ``permissions``) from the service's log
and the NATS server's lines about the service's connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from nats.aio.client import Client

from pytest_aegis.app.health import Health, ProbeTarget
from pytest_aegis.natsd.connect import PERMISSIONS_LINE, classify_lines
from pytest_aegis.natsd.server import NatsServer
from pytest_aegis.waiting import async_wait_until

#: Which refusal a start is blamed on when the lines show several.
REFUSAL_ORDER = ("tls", "auth", "permissions")


class Exited(Exception):
    """The service's process ended while the harness waited for it to become healthy."""


class HealthRefused(Exception):
    """The server refused the service's subscription to its health subject (the line says so)."""


class Running(Protocol):
    @property
    def is_running(self) -> bool: ...
    def tail(self, lines: int = 50) -> list[str]: ...


def refusal(app_lines: Iterable[str], server_lines: Iterable[str]) -> str | None:
    """The refusal the lines show (``tls`` before ``auth`` before ``permissions``), if any."""
    found = classify_lines([*app_lines, *server_lines])
    return next((reason for reason in REFUSAL_ORDER if reason in found), None)


def without_ports(lines: Iterable[str], ports: Iterable[int]) -> list[str]:
    """``lines`` without those about a connection from one of ``ports`` (the harness's own)."""
    marks = [f":{port} - " for port in ports]
    return [line for line in lines if not any(mark in line for mark in marks)]


def health_denial(lines: Iterable[str], subject: str) -> str | None:
    """A line saying the server denied a subscription to ``subject`` (or under it)."""
    quoted = (f'"{subject}"', f'"{subject}.')
    return next(
        (line for line in lines if PERMISSIONS_LINE.search(line) and any(q in line for q in quoted)), None
    )


async def wait_healthy(
    process: Running,
    *,
    health: Health,
    target: ProbeTarget,
    timeout: float,
    server: NatsServer | None = None,
    server_lines: Callable[[], list[str]] = list,
) -> object:
    """Probe with ``health`` until it passes (return what it returned); raise :class:`Exited` if
    the process ends, :class:`HealthRefused` if its subscription to the contract's subject was
    denied, ``AssertionError`` (a :class:`~pytest_aegis.errors.WaitTimeout`) after ``timeout``, and
    :class:`~pytest_aegis.errors.NatsConnectError` if the harness's own probe connection to
    ``server`` (opened only for a contract over NATS) cannot connect.  ``server``: the NATS server
    an app is wired to (``None`` for a third-party server, whose contracts never use NATS)."""
    client: Client | None = None

    async def nats() -> Client:
        nonlocal client
        if server is None:
            raise TypeError(
                f"{health.describe()}: a contract over NATS, for an instance without a NATS server"
            )
        if client is None:
            client = await server.connect()
        return client

    async def probe() -> object:
        if not process.is_running:
            raise Exited  # not transient: stop waiting at once
        if health.subject is not None:
            denied = health_denial([*process.tail(200), *server_lines()], health.subject)
            if denied is not None:
                raise HealthRefused(denied)
        return await health.probe(target, nats)

    try:
        return await async_wait_until(
            probe,
            health.describe(),
            ok=lambda _: True,  # a probe that returns passed
            timeout=timeout,
            transient=(AssertionError,),
            interval=0.01,
            max_interval=0.2,
        )
    finally:
        if client is not None:
            await client.close()
