"""The external NATS server: what it says about itself (:func:`probe`), the runtime the handle
wraps (:class:`ExternalNatsRuntime`: no process, no log, no lifecycle), and the end-of-session
removal of the streams the session made (:func:`delete_own_streams`)."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from pytest_aegis.backends.external.target import CA_FLAG, NatsTarget, refuse
from pytest_aegis.errors import BackendUnavailable, NatsConnectError
from pytest_aegis.natsd.connect import FATAL_REASONS, open_client

#: Streams made during the session with a description starting so are the session's to delete.
OWNED_DESCRIPTION = "pytest-aegis"
#: The JetStream API's list of stream names (from the meta leader's state: no stream leader asked).
STREAM_NAMES = "$JS.API.STREAM.NAMES"
#: What JetStream answers while a stream (or the meta group) elects a leader, e.g. after a node's
#: loss: worth asking again shortly.
ELECTING = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError)
T = TypeVar("T")


@dataclass(frozen=True)
class ServerFacts:
    version: str
    server_name: str
    tls_required: bool
    jetstream: bool
    streams: frozenset[str]


def client_tls(target: NatsTarget, tls: bool) -> ssl.SSLContext | None:
    """Verification always on: the given CA, else the system trust store."""
    if not tls and target.ca_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if target.ca_file is not None:
        context.load_verify_locations(cafile=str(target.ca_file))
    return context


def _reason(error: NatsConnectError) -> str:
    """The underlying reason, with a hint naming the setting that fixes it."""
    real: BaseException = error.cause or error
    text = str(real) or type(real).__name__
    if isinstance(real, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        text += f" (the server's certificate is not trusted: pass its CA with {CA_FLAG})"
    elif isinstance(real, nats.errors.Error) and re.search("authorization violation", text, re.I):
        text += " (check the NATS credentials: --aegis-external-nats-user/-password, -token or -creds)"
    elif "tls required" in text.lower():
        text += " (the server requires TLS: use a tls:// URL, with its CA via " + CA_FLAG + ")"
    return f"{type(real).__name__}: {text}"


class NoNodeAnswered(BackendUnavailable):
    """No URL of the list answered a connect; the message has each one's reason.  ``fatal``: the
    walk stopped at an error every node would give (bad credentials, an untrusted certificate)."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


def one_attempt(connect_timeout: float) -> dict[str, Any]:
    """nats-py options for one quick attempt at one server: no reconnects, no retry loop."""
    return {
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,  # 0 retries forever on a refused connection (nats-py)
        "reconnect_time_wait": 0,  # and the second attempt would wait 2 s
        "connect_timeout": max(1, round(connect_timeout)),
    }


async def connect_any(kwargs: Mapping[str, Any], *, timeout: float) -> Client:
    """A client connected to the first URL of ``kwargs["servers"]`` that answers, trying them in
    order, each within ``timeout`` seconds (with :func:`one_attempt`'s options: a dead node is
    passed over at once, and no retry loop prints errors); :class:`NoNodeAnswered` with each
    node's reason when none does, or at the first reason every node would share."""
    urls: Sequence[str] = kwargs["servers"]
    reasons = []
    for url in urls:
        try:
            return await open_client({**kwargs, "servers": [url]}, timeout=timeout)
        except NatsConnectError as exc:
            reasons.append(_reason(exc) if len(urls) == 1 else f"{url}: {_reason(exc)}")
            if exc.reason in FATAL_REASONS:
                raise NoNodeAnswered("; ".join(reasons), fatal=True) from None
    raise NoNodeAnswered("; ".join(reasons), fatal=False)


async def probe(kwargs: Mapping[str, Any], timeout: float, *, list_streams: bool) -> ServerFacts:
    client = await connect_any({**kwargs, **one_attempt(timeout)}, timeout=timeout * 3)
    try:
        info: dict[str, Any] = dict(getattr(client, "_server_info", {}) or {})
        jetstream = False
        streams: set[str] = set()
        if info.get("jetstream"):
            js = client.jetstream(timeout=timeout)
            try:
                await js.account_info()
                jetstream = True
            except nats.errors.Error:
                jetstream = False  # the server has it, this account has not
            if jetstream and list_streams:
                streams = await _existing_streams(client, timeout)
        return ServerFacts(
            version=str(info.get("version", "?")),
            server_name=str(info.get("server_name", "")),
            tls_required=bool(info.get("tls_required")),
            jetstream=jetstream,
            streams=frozenset(streams),
        )
    finally:
        await client.close()


class ExternalNatsRuntime:
    """The external NATS server as a :class:`~pytest_aegis.natsd.server.NatsRuntime`: no process,
    no log, and no lifecycle."""

    monitor_port: int | None = None

    def __init__(self, target: NatsTarget, facts: ServerFacts, *, name: str) -> None:
        self.name = name
        self.host = target.host
        self.port = target.port
        self.version = facts.version
        self._shown = target.shown  # every URL: none of them is ours

    @property
    def pid(self) -> int | None:
        return None

    @property
    def is_running(self) -> bool:
        return True  # not ours to judge; a dead server shows as connection errors

    def logs(self) -> str:
        return ""  # the server's log is wherever its owner keeps it

    def log_size(self) -> int:
        return 0

    def stop(self) -> None:
        refuse("stop", f"the NATS server at {self._shown}")

    def kill(self) -> None:
        refuse("kill", f"the NATS server at {self._shown}")

    def restart(self) -> None:
        refuse("restart", f"the NATS server at {self._shown}")

    @property
    def is_paused(self) -> bool:
        return False

    def pause(self) -> None:
        refuse("pause", f"the NATS server at {self._shown}")

    def resume(self) -> None:
        refuse("resume", f"the NATS server at {self._shown}")

    def reload_config(self, *, signal: bool = True) -> None:
        refuse("reload", f"the NATS server at {self._shown}")

    def signal(self, name: str) -> None:
        refuse("signal", f"the NATS server at {self._shown}")

    def stopped_store(self) -> NoReturn:
        refuse("corrupt", f"the store of the NATS server at {self._shown}")

    def power_loss(self) -> NoReturn:
        refuse("power_loss", f"the NATS server at {self._shown}")

    def keep_instructions(self) -> str:
        return "external server (not started by the harness)"


@dataclass
class Cleanup:
    """What the end-of-session removal did: the streams deleted, those left behind (each with the
    reason), and ``unreached``: why no node could do it (``None`` once one did)."""

    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    unreached: str | None = None


def _label(stream: str) -> str:
    return f"KV bucket {stream.removeprefix('KV_')}" if stream.startswith("KV_") else f"stream {stream}"


async def delete_own_streams(kwargs: Mapping[str, Any], before: frozenset[str], *, timeout: float) -> Cleanup:
    """Delete the streams made during the session (not in ``before``, described as ours), through
    the first node of ``kwargs["servers"]`` that answers; a node lost on the way hands over to
    the next.  Each connect gets ``timeout`` seconds (no reconnects: :func:`one_attempt`), and
    each JetStream request as long."""
    cleanup = Cleanup()
    reasons = []
    for url in kwargs["servers"]:
        try:
            nc = await connect_any({**kwargs, "servers": [url]}, timeout=timeout)
        except NoNodeAnswered as exc:
            reasons.append(f"{url}: {exc}")
            if exc.fatal:
                break
            continue
        try:
            await _delete_owned(nc, before, cleanup, timeout=timeout)
            return cleanup
        except (nats.errors.Error, TimeoutError) as exc:  # the node went away, or JetStream did not answer
            reasons.append(f"{url}: {type(exc).__name__}: {exc or 'no answer'}")
        finally:
            await nc.close()
    cleanup.unreached = f"no node could: {'; '.join(reasons)}"
    return cleanup


async def _delete_owned(nc: Client, before: frozenset[str], cleanup: Cleanup, *, timeout: float) -> None:
    """Delete, through ``nc``, what :func:`delete_own_streams` deletes; a stream that cannot be
    read or deleted is left (with the reason), a connection error is raised (for the next node).

    The names come from the meta group's state (``STREAM.NAMES``); ``STREAM.LIST`` (nats-py's
    ``streams_info``) leaves out every stream whose leader does not answer in time, which is
    common just after a node's loss.  While a stream elects its leader, reading and deleting it
    are tried again, all within ``timeout`` seconds."""
    until = asyncio.get_running_loop().time() + timeout
    js = nc.jetstream(timeout=min(timeout, 2.0))
    for name in await _settled(lambda: _stream_names(nc, timeout), until=until):
        if name in before:
            continue
        try:
            info = await _settled(lambda: js.stream_info(name), until=until)  # noqa: B023 (awaited now)
            if not (info.config.description or "").startswith(OWNED_DESCRIPTION):
                continue
            await _settled(lambda: js.delete_stream(name), until=until)  # noqa: B023 (awaited now)
        except nats.js.errors.NotFoundError:
            continue  # gone meanwhile (a node lost mid-way had deleted it)
        except (nats.js.errors.APIError, *ELECTING) as exc:
            cleanup.left.append(f"{_label(name)} ({type(exc).__name__}: {exc or 'no answer'})")
            continue
        cleanup.deleted.append(name)


async def _existing_streams(nc: Client, timeout: float) -> set[str]:
    """The names of the streams that exist now, the ones the session must never delete: from the
    meta group's state, since ``STREAM.LIST`` leaves out the streams whose leader does not answer
    in time (just after a node's loss), and a stream left out here would be deleted at the end.
    :class:`BackendUnavailable` when JetStream cannot say within ``timeout`` seconds."""
    until = asyncio.get_running_loop().time() + timeout
    try:
        return set(await _settled(lambda: _stream_names(nc, timeout), until=until))
    except nats.errors.Error as exc:
        raise BackendUnavailable(
            f"cannot list the streams that exist (the session would not know which are its own to "
            f"delete): {type(exc).__name__}: {exc or 'no answer'}"
        ) from None


async def _stream_names(nc: Client, timeout: float) -> list[str]:
    """Every stream's name (all pages of ``STREAM.NAMES``)."""
    names: list[str] = []
    while True:
        reply = await nc.request(STREAM_NAMES, json.dumps({"offset": len(names)}).encode(), timeout=timeout)
        document = json.loads(reply.data)
        if document.get("error"):
            nats.js.errors.APIError.from_error(document["error"])  # raises it
        page = [str(name) for name in document.get("streams") or ()]
        names += page
        if not page or len(names) >= int(document.get("total", 0)):
            return names


async def _settled(call: Callable[[], Awaitable[T]], *, until: float) -> T:
    """``await call()``, again while JetStream answers "electing" (:data:`ELECTING`), up to the
    loop time ``until``; then the last such error."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await call()
        except ELECTING:
            if loop.time() >= until:
                raise
            await asyncio.sleep(0.1)
