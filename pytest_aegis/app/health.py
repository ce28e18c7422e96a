"""An app's health contract: what "healthy" means for it, as a strategy object.

One of :class:`NatsRequest` (a request on a subject answered with a health document: the
reference service's contract), :class:`ServicePing` (the NATS services protocol's ``$SRV.PING``,
ADR-32), :class:`HttpGet` (a GET that answers 2xx), :class:`TcpConnect` (its port accepts a
connection), :class:`ReadyLine` (the ready line alone) or :class:`CustomProbe` (a check of
your own).  Each ``probe`` returns what showed the
app healthy, or raises ``AssertionError`` saying what it saw while the app is not healthy yet; the
harness calls it until it passes or the start's deadline ends.  In ini files a contract is written
as text (:func:`parse_health`): ``nats:health.check``, ``srv``, ``srv:NAME``, ``http:/healthz``,
``tcp``, ``ready``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pytest_aegis.assertions.micro import PING_SUBJECT, assert_micro_ping, micro_name
from pytest_aegis.errors import SpecError

if TYPE_CHECKING:
    from nats.aio.client import Client

#: Seconds one probe may take (the start's deadline bounds the whole wait).
PROBE_TIMEOUT = 0.5
#: How :func:`parse_health` reads each contract, for its error message and the docs.
HEALTH_FORMS = ("nats:SUBJECT", "srv", "srv:NAME", "http:/PATH", "tcp", "ready")


class ProbeTarget(Protocol):
    """What a probe may read of the instance it checks."""

    @property
    def service_name(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def http_url(self) -> str | None: ...
    def peer_ids(self) -> Collection[str]: ...


#: The harness's own NATS connection for probes, opened at the first call.
NatsProbe = Callable[[], Awaitable["Client"]]


class Health(Protocol):
    """A health contract: ``probe`` passes (returning what it saw) once the instance is healthy."""

    #: A subject whose subscription the server must allow, if the contract has one: a denial in the
    #: logs ends the wait at once (the app can never become healthy).
    @property
    def subject(self) -> str | None: ...
    #: Whether the probe reaches the app on its port: the harness then leases one for the instance
    #: (``AEGIS_HTTP_BIND``/``AEGIS_HTTP_PORT``), the same across restarts; otherwise the app is
    #: told ``127.0.0.1:0`` and says where it listens in its ready line, if it listens at all.
    @property
    def needs_port(self) -> bool: ...
    def describe(self) -> str: ...
    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object: ...


@dataclass(frozen=True)
class NatsRequest:
    """A request on ``subject`` answered with a healthy health document (the reference service's
    contract; see docs/app-contract.md)."""

    subject: str = "health.check"
    needs_port = False

    def describe(self) -> str:
        return f"an answer on {self.subject}"

    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object:
        # Lazy: its health document's model loads pydantic (~0.1 s), and declared apps are parsed
        # (this module imported) when the session is configured.
        from pytest_aegis.assertions.service import assert_health_check

        return await assert_health_check(
            await nats(), self.subject, service=target.service_name, within=PROBE_TIMEOUT
        )


@dataclass(frozen=True)
class ServicePing:
    """A valid ``$SRV.PING`` reply (the NATS services protocol, ADR-32) from this instance, for the
    service ``name`` (default: the instance's service name)."""

    name: str | None = None
    needs_port = False

    @property
    def subject(self) -> str:
        return f"{PING_SUBJECT}.{self.name}" if self.name else PING_SUBJECT

    def describe(self) -> str:
        return f"an answer on {self.subject}"

    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object:
        return await assert_micro_ping(
            await nats(),
            self.name or target.service_name,
            within=PROBE_TIMEOUT,
            exclude_ids=target.peer_ids(),
        )


@dataclass(frozen=True)
class HttpGet:
    """A GET of ``path`` on the instance's HTTP address answers 2xx (the body, parsed as JSON when
    it is, is what :attr:`AppProcess.health_reply` holds)."""

    path: str = "/healthz"
    subject = None
    needs_port = True

    def describe(self) -> str:
        return f"a 2xx answer to GET {self.path}"

    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object:
        url = (target.http_url or f"http://127.0.0.1:{target.port}").rstrip("/") + self.path
        status, body = await asyncio.to_thread(_get, url)
        if not 200 <= status < 300:
            raise AssertionError(f"GET {url} answered {status}: {body[:200]!r}")
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"status": status, "body": body}
        return parsed if isinstance(parsed, dict) else {"status": status, "body": parsed}


def _get(url: str) -> tuple[int, str]:
    """``(status, body)`` of a GET; ``AssertionError`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as exc:
        raise AssertionError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None


@dataclass(frozen=True)
class TcpConnect:
    """The instance's port (``AEGIS_HTTP_PORT``) accepts a TCP connection."""

    subject = None
    needs_port = True

    def describe(self) -> str:
        return "a TCP connection to its port"

    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object:
        assert target.port is not None, "needs_port: the harness leases the instance a port"
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", target.port), PROBE_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise AssertionError(f"connect to 127.0.0.1:{target.port}: {exc or 'timed out'}") from None
        writer.close()
        await writer.wait_closed()
        return {"port": target.port}


@dataclass(frozen=True)
class ReadyLine:
    """Healthy once the ready line was printed (the spec's ``ready_pattern`` is required)."""

    subject = None
    needs_port = False

    def describe(self) -> str:
        return "its ready line"

    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object:
        return {}


@dataclass(frozen=True)
class CustomProbe:
    """Healthy once ``check(target)`` returns (a coroutine function is awaited): it raises
    ``AssertionError`` saying what it saw while the instance is not ready.  ``target`` is the
    instance (``port``, ``url`` of a third-party server; ``port``, ``http_url`` of an app).
    ``description`` names what it waits for in the timeout's message.  The instance gets a leased
    port unless ``needs_port=False``."""

    check: Callable[[Any], object]
    description: str = "a custom probe"
    needs_port: bool = True
    subject = None

    def describe(self) -> str:
        return self.description

    async def probe(self, target: ProbeTarget, nats: NatsProbe) -> object:
        seen = self.check(target)
        return await seen if inspect.isawaitable(seen) else seen


def health_for_subject(subject: str) -> Health:
    """The contract an ``aegis_app_health_subject`` means: the services protocol's ping for
    ``$SRV.PING`` / ``$SRV.PING.<name>``, else a health request on ``subject``."""
    is_micro, name = micro_name(subject)
    return ServicePing(name) if is_micro else NatsRequest(subject)


def parse_health(text: str) -> Health:
    """The contract ``text`` names (one of :data:`HEALTH_FORMS`); :class:`SpecError` otherwise."""
    kind, _, arg = text.strip().partition(":")
    if kind == "nats" and arg:
        return NatsRequest(arg)
    if kind == "srv":
        return ServicePing(arg or None)
    if kind == "http" and (not arg or arg.startswith("/")):
        return HttpGet(arg or "/healthz")
    if kind in ("tcp", "ready") and not arg:
        return TcpConnect() if kind == "tcp" else ReadyLine()
    raise SpecError(f"{text!r} is not a health contract; valid forms: {', '.join(HEALTH_FORMS)}")
