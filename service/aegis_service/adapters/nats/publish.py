"""Publish batches to JetStream with every message acknowledged by its stream, cheaply.

nats-py's ``JetStreamContext.publish_async`` gives each message a future, a semaphore slot and a
parsed ``PubAck`` object: measured here, ~75 us of CPU per message against ~25 us for the same
acks counted on one callback subscription, as this class does (a scratch script on plain
nats-server, 50,000 messages).  The wire protocol is the same: each message is published with its
own reply subject under one inbox prefix, and the stream answers there with ``{"stream": ..., "seq":
...}`` or ``{"error": {...}}`` (or a 503 status when no stream captures the subject).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header, StatusCode

from aegis_service.domain.errors import Unavailable, first_line
from aegis_service.domain.events import OutgoingEvent

#: nats-py's own default for ``publish_async``: publishes awaiting their ack at any time.
MAX_PENDING = 4000

#: (subject, body, headers); a ``Nats-Msg-Id`` header makes a re-publish a no-op in the duplicate window.
Message = tuple[str, bytes, dict[str, str]]
MSG_ID_HEADER = "Nats-Msg-Id"


class PublishFailed(Exception):
    """Some messages of a batch were rejected by the stream or not acknowledged in time."""


@dataclass
class _Batch:
    first: int
    size: int
    window: asyncio.Semaphore
    done: asyncio.Future[None]
    acked: bytearray = field(init=False)
    outstanding: int = field(init=False)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.acked = bytearray(self.size)
        self.outstanding = self.size


class BatchPublisher:
    """One batch at a time; :meth:`start` before the first :meth:`publish`."""

    def __init__(self, client: Client, *, max_pending: int = MAX_PENDING) -> None:
        self.client = client
        self._max_pending = max_pending
        self._prefix = client.new_inbox()
        self._sub: Subscription | None = None
        self._next = 0
        self._batch: _Batch | None = None

    async def start(self) -> None:
        self._sub = await self.client.subscribe(f"{self._prefix}.*", cb=self._on_ack)

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    async def publish(self, messages: Sequence[Message], *, timeout: float) -> None:
        """Publish ``messages`` in order and return once the stream acknowledged every one.

        Raises :class:`PublishFailed` naming how many were rejected (with the first reason) or
        not acknowledged within ``timeout`` seconds (publishing included).  Acks that come after
        that are ignored.
        """
        if self._sub is None:
            raise RuntimeError("BatchPublisher.start() was not called")
        if not messages:
            return
        loop = asyncio.get_running_loop()
        batch = _Batch(self._next, len(messages), asyncio.Semaphore(self._max_pending), loop.create_future())
        self._next += len(messages)
        self._batch = batch
        publish, prefix = self.client.publish, self._prefix
        try:
            async with asyncio.timeout(timeout):
                for n, (subject, body, headers) in enumerate(messages, batch.first):
                    await batch.window.acquire()
                    await publish(subject, body, reply=f"{prefix}.{n}", headers=headers)
                await batch.done
        except TimeoutError:
            raise PublishFailed(
                f"{batch.outstanding} of {batch.size} publishes not acknowledged within {timeout:g}s"
            ) from None
        finally:
            self._batch = None
        if batch.errors:
            raise PublishFailed(f"{len(batch.errors)} of {batch.size} publishes rejected: {batch.errors[0]}")

    async def _on_ack(self, msg: Msg) -> None:
        batch = self._batch
        if batch is None:
            return  # an ack that came after its batch gave up
        index = int(msg.subject.rpartition(".")[2]) - batch.first
        if not 0 <= index < batch.size or batch.acked[index]:
            return
        batch.acked[index] = 1
        batch.outstanding -= 1
        batch.window.release()
        if not msg.data or b'"error":' in msg.data:
            batch.errors.append(_reason(msg))
        if batch.outstanding == 0 and not batch.done.done():
            batch.done.set_result(None)


def _reason(msg: Msg) -> str:
    if msg.data:
        return msg.data.decode("utf-8", "replace")
    headers = msg.headers or {}
    status = headers.get(Header.STATUS, "no reply")
    if status == StatusCode.SERVICE_UNAVAILABLE:  # no responders
        return "503 no stream captures the subject"
    description = headers.get(Header.DESCRIPTION, "").strip().splitlines()
    return f"{status} {description[0] if description else ''}".strip()


class StreamPublisher:
    """The outbox relay's :class:`~aegis_service.audit.EventPublisher`: each event published with its id
    as ``Nats-Msg-Id`` through one :class:`BatchPublisher`, started on first use."""

    def __init__(self, client: Callable[[], Client]) -> None:
        self._client = client
        self._publisher: BatchPublisher | None = None

    async def publish(self, events: Sequence[OutgoingEvent], timeout: float) -> None:
        try:
            if self._publisher is None:
                publisher = BatchPublisher(self._client())
                await publisher.start()
                self._publisher = publisher
            messages = [(e.subject, e.body, {MSG_ID_HEADER: e.event_id}) for e in events]
            await self._publisher.publish(messages, timeout=timeout)
        except (PublishFailed, nats.errors.Error, OSError) as exc:
            raise Unavailable(first_line(exc)) from exc

    async def close(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.stop()
