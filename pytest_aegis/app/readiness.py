"""Whether an instance of the service under test became healthy, and if not, why.

:func:`wait_healthy` probes the health subject until a healthy reply from the instance (or the
deadline), and stops at once when the process exits or when the logs show that the server
refused the service's health subscription (a service that never answers need not be waited
out).  :func:`refusal` reads a refusal (``tls``, ``auth``, ``permissions``) from the service's log
and the NATS server's lines about the service's connections.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol

from nats.aio.client import Client

from pytest_aegis.assertions.micro import assert_micro_ping, micro_name
from pytest_aegis.assertions.service import assert_health_check
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


#: ``check(client)``: one health probe; ``AssertionError`` (listing the replies seen) when not healthy.
Check = Callable[[Client], Awaitable[object]]


def health_check(subject: str, service: str, *, exclude_ids: Callable[[], Collection[str]]) -> Check:
    """The probe for ``subject``: the services protocol's ping when it is ``$SRV.PING`` (of the
    service ``service``) or ``$SRV.PING.<name>``, from an instance not in ``exclude_ids()`` (the
    test's other instances); otherwise the harness's health request for ``service``."""
    is_micro, name = micro_name(subject)

    async def micro(nc: Client) -> object:
        return await assert_micro_ping(nc, name or service, within=0.5, exclude_ids=exclude_ids())

    async def aegis(nc: Client) -> object:
        return await assert_health_check(nc, subject, service=service, within=0.5)

    return micro if is_micro else aegis


async def wait_healthy(
    server: NatsServer,
    process: Running,
    *,
    subject: str,
    check: Check,
    timeout: float,
    server_lines: Callable[[], list[str]],
) -> object:
    """Probe with ``check`` until it passes (return what it returned); raise :class:`Exited` if
    the process ends, :class:`HealthRefused` if its subscription to ``subject`` was denied,
    ``AssertionError`` (a :class:`~pytest_aegis.errors.WaitTimeout`) after ``timeout``, and
    :class:`~pytest_aegis.errors.NatsConnectError` if the harness's own probe cannot connect."""
    nc = await server.connect()
    try:

        async def probe() -> object:
            if not process.is_running:
                raise Exited  # not transient: stop waiting at once
            denied = health_denial([*process.tail(200), *server_lines()], subject)
            if denied is not None:
                raise HealthRefused(denied)
            return await check(nc)

        return await async_wait_until(
            probe,
            f"an answer on {subject}",
            ok=lambda _: True,  # a probe that returns passed
            timeout=timeout,
            transient=(AssertionError,),
            interval=0.01,
            max_interval=0.2,
        )
    finally:
        await nc.close()
