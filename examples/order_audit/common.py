"""What both services do the same way: read their NATS settings and connect, failing fast.

A refused first connect (wrong password, untrusted certificate) ends the program at once with the
reason on stderr and exit code 1: nats-py would otherwise retry it like a reconnect for two
minutes. Once connected, it reconnects for as long as it runs (a restarted server comes back).
"""

from __future__ import annotations

import os
import ssl
import sys
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError

#: The stream of order events and its subjects (``orders.created``).
STREAM = "ORDERS"
SUBJECT_PREFIX = "orders"
#: JetStream's "stream name already in use" (a stream of another config; not ours to change).
STREAM_NAME_IN_USE = 10058


@dataclass(frozen=True)
class NatsSettings:
    url: str
    user: str | None
    password: str | None
    ca_file: str | None

    @classmethod
    def from_env(cls, prefix: str) -> NatsSettings:
        url = os.environ.get(f"{prefix}_NATS_URL", "")
        if not url:
            raise SystemExit(f"{prefix.lower()}: {prefix}_NATS_URL is not set (e.g. tls://127.0.0.1:4222)")
        return cls(
            url=url,
            user=os.environ.get(f"{prefix}_NATS_USER") or None,
            password=os.environ.get(f"{prefix}_NATS_PASSWORD") or None,
            ca_file=os.environ.get(f"{prefix}_NATS_CA") or None,
        )


def required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


async def connect_nats(settings: NatsSettings, name: str) -> Client:
    """Connect once (a refusal raises), then reconnect for the life of the connection."""

    async def log_error(error: Exception) -> None:
        print(f"{name}: NATS error: {error!r}", file=sys.stderr, flush=True)

    tls = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else None
    nc = await nats.connect(
        settings.url,
        user=settings.user,
        password=settings.password,
        tls=tls,
        name=name,
        connect_timeout=5,
        allow_reconnect=False,
        error_cb=log_error,
    )
    nc.options["allow_reconnect"] = True
    nc.options["max_reconnect_attempts"] = -1
    nc.options["reconnect_time_wait"] = 0.1
    return nc


async def connect_jetstream(settings: NatsSettings, name: str) -> tuple[Client, JetStreamContext]:
    """Connected, with the stream in place.  A refusal or an unreachable server ends the program
    here: the reason on stderr, exit code 1."""
    try:
        nc = await connect_nats(settings, name)
    except Exception as exc:
        print(f"{name}: cannot connect to NATS at {settings.url}: {exc!r}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    js = nc.jetstream(timeout=2)
    await ensure_stream(js)
    return nc, js


async def ensure_stream(js: JetStreamContext) -> None:
    """The stream of order events, made by whichever service starts first (same config: a no-op
    for the second).  ``duplicate_window``: a relay that publishes an event again (it crashed
    before marking it sent) within two minutes is told it is a duplicate, and nothing is stored."""
    config = StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        duplicate_window=120,
        description="order events, relayed from the orders service's outbox",
    )
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
