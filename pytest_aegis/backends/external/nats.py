"""The external NATS server: what it says about itself (:func:`probe`), the runtime the handle
wraps (:class:`ExternalNatsRuntime`: no process, no log, no lifecycle), and the end-of-session
removal of the streams the session made (:func:`delete_own_streams`)."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nats.errors

from pytest_aegis.backends.external.target import CA_FLAG, NatsTarget, refuse
from pytest_aegis.errors import BackendUnavailable, NatsConnectError
from pytest_aegis.natsd.connect import open_client

#: Streams made during the session with a description starting so are the session's to delete.
OWNED_DESCRIPTION = "pytest-aegis"


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


async def probe(kwargs: Mapping[str, Any], timeout: float, *, list_streams: bool) -> ServerFacts:
    options = {
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,  # 0 retries forever on a refused connection (nats-py)
        "reconnect_time_wait": 0,  # and the second attempt would wait 2 s
        "connect_timeout": max(1, round(timeout)),
    }
    try:
        client = await open_client({**kwargs, **options}, timeout=timeout * 3)
    except NatsConnectError as exc:
        raise BackendUnavailable(_reason(exc)) from None
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
                streams = {s.config.name for s in await js.streams_info() if s.config.name}
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
        self._shown = target.url

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

    def keep_instructions(self) -> str:
        return "external server (not started by the harness)"


async def delete_own_streams(
    kwargs: Mapping[str, Any], before: frozenset[str], *, timeout: float
) -> list[str]:
    """Delete the streams made during the session (not in ``before``, described as ours); return
    their names.  Gives up after ``timeout`` seconds to connect and as long again to delete."""
    nc = await open_client(kwargs, timeout=timeout)
    try:
        js = nc.jetstream(timeout=timeout)
        deleted = []
        for info in await js.streams_info():
            name = info.config.name
            description = info.config.description or ""
            if name and name not in before and description.startswith(OWNED_DESCRIPTION):
                await js.delete_stream(name)
                deleted.append(name)
        return deleted
    finally:
        await nc.close()
