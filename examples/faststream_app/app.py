"""ingest: a FastStream app that stores the events of a JetStream stream in PostgreSQL.

* It declares the stream ``EVENTS`` (subjects ``events.>``) and reads it with the durable pull
  consumer ``ingest``; each event, a JSON object ``{"id": ..., "kind": ..., "data": {...}}``, becomes
  one row of the table ``events`` (``migrations/001_events.sql``).
* The message is acknowledged after its row is committed, so a crash loses nothing: JetStream
  delivers it again. The insert is idempotent (``ON CONFLICT (event_id) DO NOTHING``), so an
  event delivered twice (a redelivery, a producer that retried) is still stored once.
* A request on its health subject gets ``{"service": <name>, "status": "healthy", ...}`` once it
  is started and its database answers: a FastStream subscriber answering requests, the reply
  shape pytest-aegis's ``aegis_app`` waits for.

Configuration, from its own environment variables (the test suite maps the harness's onto them,
see ``aegis_app_env`` in pyproject.toml):

===========================  =================================================================
``INGEST_NATS_URL``          where NATS is (``tls://`` when the server wants TLS); required
``INGEST_NATS_USER``         user name and password, when the server wants them
``INGEST_NATS_PASSWORD``
``INGEST_NATS_CA``           the CA to verify the server's certificate against (PEM file)
``INGEST_NATS_CERT``         the client certificate and key to present (mTLS), PEM files
``INGEST_NATS_KEY``
``INGEST_DATABASE_URL``      the PostgreSQL DSN (``postgresql://user:password@host:port/db``); required
``INGEST_SERVICE_NAME``      its name in health replies (``ingest``)
``INGEST_HEALTH_SUBJECT``    the subject it answers health requests on (``ingest.health``)
===========================  =================================================================

Run it with ``python app.py``. It fails fast: a refused login or TLS handshake ends it with exit
code 1 and the reason on stderr. SIGTERM (or SIGINT) stops it after the event in hand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
from dataclasses import dataclass
from typing import Any

import psycopg
from faststream import AckPolicy, FastStream
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, NatsUserPassword, PullSub
from faststream.security import BaseSecurity
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

STREAM = JStream(name="EVENTS", subjects=["events.>"])
DURABLE = "ingest"

INSERT = """
    INSERT INTO events (event_id, kind, data, subject, stream_seq)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (event_id) DO NOTHING
"""


class Event(BaseModel):
    id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    nats_url: str
    user: str | None
    password: str | None
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    database_url: str
    service_name: str
    health_subject: str

    @classmethod
    def from_env(cls) -> Settings:
        def get(name: str) -> str | None:
            return os.environ.get(f"INGEST_{name}") or None

        missing = [f"INGEST_{name}" for name in ("NATS_URL", "DATABASE_URL") if not get(name)]
        if missing:
            raise SystemExit(f"ingest: {' and '.join(missing)} must be set")
        return cls(
            nats_url=get("NATS_URL") or "",
            user=get("NATS_USER"),
            password=get("NATS_PASSWORD"),
            ca_file=get("NATS_CA"),
            cert_file=get("NATS_CERT"),
            key_file=get("NATS_KEY"),
            database_url=get("DATABASE_URL") or "",
            service_name=get("SERVICE_NAME") or "ingest",
            health_subject=get("HEALTH_SUBJECT") or "ingest.health",
        )

    def security(self) -> BaseSecurity | None:
        """TLS verified against ``ca_file`` only (hostnames checked), a client certificate when
        given, and the user's password."""
        context = None
        if self.ca_file or self.nats_url.startswith("tls://"):
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file and self.key_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        if self.user and self.password:
            return NatsUserPassword(self.user, self.password, ssl_context=context)
        return BaseSecurity(ssl_context=context) if context else None


class Database:
    """The app's one PostgreSQL connection (psycopg serializes its use by the handlers)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    async def open(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def store(self, event: Event, subject: str, stream_seq: int) -> None:
        assert self._conn is not None, "the database is opened at startup"
        await self._conn.execute(INSERT, (event.id, event.kind, Jsonb(event.data), subject, stream_seq))

    async def check(self) -> str:
        if self._conn is None:
            return "not connected"
        try:
            await self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"error: {exc}"
        return "ok"


def build(settings: Settings) -> FastStream:
    logger = logging.getLogger("ingest")
    broker = NatsBroker(
        settings.nats_url,
        security=settings.security(),
        name=settings.service_name,
        connect_timeout=5,
        allow_reconnect=False,  # for the first connect only: see connect() below
        logger=logger,
        log_level=logging.DEBUG,  # a line per message at DEBUG: quiet at the INFO level set in main()
    )
    app = FastStream(broker, logger=logger)
    db = Database(settings.database_url)
    started = asyncio.Event()

    @app.on_startup
    async def connect() -> None:
        # nats-py retries a refused first connect like a reconnect (60 times, 2 s apart): connect
        # once, failing at once on a wrong password or certificate, then reconnect for the life of
        # the connection.
        nc = await broker.connect()
        nc.options["allow_reconnect"] = True
        await db.open()

    @app.after_startup
    async def ready() -> None:
        started.set()  # the stream, the consumer and every subscriber are in place
        logger.info("%s up, consuming %s as %s", settings.service_name, STREAM.name, DURABLE)

    @app.after_shutdown
    async def close_db() -> None:
        await db.close()

    @broker.subscriber(
        "events.>",
        stream=STREAM,
        durable=DURABLE,
        pull_sub=PullSub(batch_size=100, timeout=1.0),
        # Acked once its row is committed; an error (the database is down) is a nak: JetStream
        # delivers it again, at most 5 times in all (a message that never fits stops there).
        ack_policy=AckPolicy.NACK_ON_ERROR,
        config=ConsumerConfig(max_deliver=5),
    )
    async def store(event: Event, msg: NatsMessage) -> None:
        raw = msg.raw_message
        await db.store(event, raw.subject, raw.metadata.sequence.stream)

    @broker.subscriber(settings.health_subject)
    async def health(_: Any) -> dict[str, Any]:
        checks = {"database": await db.check()}
        if not started.is_set():
            status = "starting"
        else:
            status = "healthy" if all(v == "ok" for v in checks.values()) else "unhealthy"
        return {"service": settings.service_name, "status": status, "checks": checks}

    return app


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build(Settings.from_env())
    try:
        await app.run()
    except Exception as exc:  # at start: a refusal, an unreachable server or database; say which
        print(f"ingest: stopped: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
