"""JetStream KV access: bucket set-up, per-message-TTL writes, and a gateway that puts every KV call behind
the "connected?" check, a timeout and the circuit breaker, translating outages into :class:`Unavailable`."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from aegis_service.adapters.nats.connection import NatsConnection
from aegis_service.breaker import CircuitBreaker, CircuitOpenError
from aegis_service.domain.errors import Unavailable, describe_error

logger = logging.getLogger(__name__)

T = TypeVar("T")

INSTANCES_BUCKET = "service-instances"
DEFINITIONS_BUCKET = "service-definitions"
WRONG_LAST_SEQUENCE_CODES = frozenset({10071, 10164})
STREAM_NAME_IN_USE = 10058
MSG_TTL_HEADER = "Nats-TTL"
EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER = "Nats-Expected-Last-Subject-Sequence"
ROLLUP_HEADER = "Nats-Rollup"

_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,  # includes nats.errors.TimeoutError
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    ConnectionError,
    Unavailable,
)


#: JetStream's "no suitable peers for placement": the cluster cannot place the replicas now (a node
#: down, or just joined and not yet heard from by the meta leader); it passes when the node is back.
NO_SUITABLE_PEERS = 10005


def is_placement_refused(exc: BaseException) -> bool:
    """True for JetStream's "no suitable peers for placement" (:data:`NO_SUITABLE_PEERS`)."""
    # Exactly BadRequestError, as nats-py raises it for an API error: its KV subclasses (wrong last
    # sequence, ...) are answers, and they carry no err_code.
    return type(exc) is nats.js.errors.BadRequestError and exc.err_code == NO_SUITABLE_PEERS


def is_unavailability(exc: BaseException) -> bool:
    """True for errors meaning "NATS/JetStream did not answer" or cannot place replicas now (these
    trip the breaker); false for answers such as "key not found" or "wrong last sequence"."""
    return isinstance(exc, _UNAVAILABLE_ERRORS) or is_placement_refused(exc)


def outage_hint(exc: BaseException, replicas: int) -> str:
    """What to check when a JetStream outage (its ``Unavailable``'s cause: ``exc``) outlasts the
    startup: the replicas a cluster could not place, or a JetStream that did not answer."""
    if is_placement_refused(exc):
        return f"are {replicas} nodes of the cluster up and routed, for AEGIS_JETSTREAM_REPLICAS={replicas}?"
    return "is JetStream enabled on the server?"


def ttl_header_value(ttl: float) -> str:
    """``Nats-TTL`` has one-second granularity and a one-second minimum: round up."""
    return str(max(1, math.ceil(ttl)))


def is_wrong_last_sequence(exc: BaseException) -> bool:
    return isinstance(exc, nats.js.errors.KeyWrongLastSequenceError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.err_code in WRONG_LAST_SEQUENCE_CODES
    )


async def ensure_bucket(
    js: JetStreamContext, name: str, *, description: str, msg_ttl: bool, replicas: int = 1
) -> KeyValue:
    """Open bucket ``name``, creating it (history 1) if missing. With ``msg_ttl`` the backing stream must
    allow per-message TTLs; an existing bucket without it is updated (the flag can be enabled, not
    removed)."""
    try:
        kv = await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        try:
            kv = await js.create_key_value(
                # direct=True: gets use the direct-get API instead of a JetStream API request.
                api.KeyValueConfig(
                    bucket=name, history=1, description=description, direct=True, replicas=replicas
                )
            )
            logger.info("created KV bucket %s", name)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            kv = await js.key_value(name)  # another instance created it concurrently
    if msg_ttl:
        stream = f"KV_{name}"
        info = await js.stream_info(stream)
        if not info.config.allow_msg_ttl:
            info.config.allow_msg_ttl = True
            await js.update_stream(info.config)
            logger.info("enabled per-message TTL on existing KV bucket %s", name)
    return kv


async def publish_with_ttl(
    js: JetStreamContext,
    bucket: str,
    key: str,
    value: bytes,
    ttl: float,
    expected_revision: int | None = None,
) -> int:
    """Put ``value`` under ``key`` with a per-message TTL (``Nats-TTL``); returns the new revision.

    With ``expected_revision`` the write only succeeds if it is still the key's latest revision, else
    :class:`nats.js.errors.KeyWrongLastSequenceError` (e.g. the entry expired or was deleted).
    """
    headers: dict[str, Any] = {MSG_TTL_HEADER: ttl_header_value(ttl)}
    if expected_revision is not None:
        headers[EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER] = str(expected_revision)
    try:
        ack = await js.publish(f"$KV.{bucket}.{key}", value, headers=headers)
    except nats.js.errors.APIError as exc:
        if exc.err_code in WRONG_LAST_SEQUENCE_CODES:
            raise nats.js.errors.KeyWrongLastSequenceError(description=exc.description) from None
        raise
    return ack.seq


async def purge_with_ttl(js: JetStreamContext, bucket: str, key: str, marker_ttl: float) -> None:
    """KV purge of ``key`` (rolls up its history) whose purge marker itself expires after ``marker_ttl``,
    so short-lived instance ids do not leave markers behind forever."""
    headers: dict[str, Any] = {
        "KV-Operation": "PURGE",
        ROLLUP_HEADER: "sub",
        MSG_TTL_HEADER: ttl_header_value(marker_ttl),
    }
    await js.publish(f"$KV.{bucket}.{key}", b"", headers=headers)


class KvGateway:
    """Runs KV operations with fail-fast checks, a per-call timeout and the publish circuit breaker."""

    def __init__(
        self, connection: NatsConnection, breaker: CircuitBreaker, timeout: float, *, replicas: int = 1
    ) -> None:
        self._connection = connection
        self._breaker = breaker
        self._timeout = timeout
        self._replicas = replicas
        self._buckets: dict[str, KeyValue] = {}
        self._js: JetStreamContext | None = None
        self._last_failure = "none"

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            self._js = self._connection.client.jetstream(timeout=self._timeout)
        return self._js

    async def open_bucket(self, name: str) -> KeyValue:
        kv = self._buckets.get(name)
        if kv is None:
            kv = await ensure_bucket(
                self.js,
                name,
                description=f"pytest-aegis reference service: {name}",
                msg_ttl=name == INSTANCES_BUCKET,
                replicas=self._replicas,
            )
            self._buckets[name] = kv
        return kv

    async def run(self, bucket: str, operation: Callable[[KeyValue], Awaitable[T]], what: str) -> T:
        """``operation(kv)`` under the gateway's guards. Raises :class:`Unavailable` on outages; other
        errors (key not found, wrong revision, ...) pass through unchanged."""
        if not self._connection.is_connected:
            raise Unavailable(f"{what}: NATS is not connected")

        async def guarded() -> T:
            kv = await self.open_bucket(bucket)
            return await operation(kv)

        try:
            return await self._breaker.call(
                lambda: asyncio.wait_for(guarded(), self._timeout), is_unavailability
            )
        except CircuitOpenError as exc:
            raise Unavailable(
                f"{what}: NATS KV is failing, circuit breaker open (last failure: {self._last_failure})",
                retry_after=max(exc.retry_after, 1.0),
            ) from None
        except Exception as exc:
            if not is_unavailability(exc):
                raise
            if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
                self._buckets.pop(bucket, None)  # stream gone (server reset?): re-create on next use
            if isinstance(exc, TimeoutError):
                self._last_failure = f"NATS did not answer within {self._timeout:g}s"
            else:
                self._last_failure = describe_error(exc)
            raise Unavailable(f"{what}: {self._last_failure}") from exc
