"""The JetStream side of the audit pipeline: stream ``AUDIT`` (subjects ``audit.>``) and the durable
pull consumer that stores its events, which is the audit consumer's
:class:`~aegis_service.audit.EventSource`. Created if absent; an existing stream is left as its operator
configured it, and the consumer's settings are brought in line with ours (create-or-update)."""

from __future__ import annotations

from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from aegis_service.adapters.nats.pull import BatchPuller
from aegis_service.domain.errors import Unavailable, describe_error

STREAM = "AUDIT"
SUBJECTS = ("audit.>",)
CONSUMER = "audit-store"
#: The consumer never gives up on a message: an event waits for the database however long it is away.
MAX_DELIVER = -1
#: How many fetched-but-unacked messages the server lets the consumer hold, in batches.
ACK_PENDING_BATCHES = 10
_TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError)


def stream_config(duplicate_window: float, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=list(SUBJECTS),
        storage=StorageType.FILE,
        duplicate_window=duplicate_window,
        num_replicas=replicas,
    )


def consumer_config(ack_wait: float, max_ack_pending: int) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        # Explicit acks, each sent after the batch's commit: AckAll would let one instance's ack
        # cover messages another instance fetched but has not stored yet.
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=MAX_DELIVER,
        max_ack_pending=max_ack_pending,
        filter_subject=SUBJECTS[0],
    )


async def ensure_stream(js: JetStreamContext, duplicate_window: float, replicas: int = 1) -> None:
    try:
        await js.stream_info(STREAM)
    except nats.js.errors.NotFoundError:
        await js.add_stream(stream_config(duplicate_window, replicas))


async def ensure_consumer(js: JetStreamContext, ack_wait: float, max_ack_pending: int) -> None:
    await js.add_consumer(STREAM, consumer_config(ack_wait, max_ack_pending))


async def set_up(
    js: JetStreamContext, *, duplicate_window: float, ack_wait: float, batch_size: int, replicas: int = 1
) -> None:
    """Create the stream and the durable consumer if absent; transient NATS errors are :class:`Unavailable`
    (the caller retries)."""
    try:
        await ensure_stream(js, duplicate_window, replicas)
        await ensure_consumer(js, ack_wait, ACK_PENDING_BATCHES * batch_size)
    except _TRANSIENT as exc:
        raise Unavailable(describe_error(exc)) from None


async def pending_messages(js: JetStreamContext) -> int:
    """Messages of the stream the consumer has not acknowledged: not yet delivered, plus delivered and
    awaiting their ack."""
    info = await js.consumer_info(STREAM, CONSUMER)
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


class AuditSource:
    """Batches from the durable consumer, each subscription through a new :class:`BatchPuller`."""

    name = f"{STREAM}/{CONSUMER}"

    def __init__(self, client: Callable[[], Client]) -> None:
        self._client = client

    async def subscribe(self) -> BatchPuller:
        puller = BatchPuller(self._client(), STREAM, CONSUMER)
        await puller.start()
        return puller
