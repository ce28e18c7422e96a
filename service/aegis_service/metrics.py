"""What the service counts and measures, as a port the use cases and adapters call (:class:`Metrics`);
the Prometheus registry behind it is an adapter (:mod:`aegis_service.adapters.prometheus`).

Values that are a state rather than an event (NATS connected, the audit consumer's pending messages) are
sampled when metrics are read, by :class:`MetricsSampler`, not pushed on every change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Final, Protocol

from aegis_service.domain.errors import ServiceError, describe_error

logger = logging.getLogger(__name__)

#: ``operation`` label values of the registry counter (the :class:`~aegis_service.definitions.
#: DefinitionService` use cases).
REGISTRY_OPERATIONS: Final = ("list", "get", "create", "update", "delete")
#: ``status`` label values of the registry counter: ``ok`` or the error code an HTTP client sees.
REGISTRY_STATUSES: Final = ("ok", "not_found", "conflict", "unavailable", "internal_error")
#: ``(transport, endpoint)`` of every timed health request.
HEALTH_ENDPOINTS: Final = (
    ("nats", "health-subject"),
    ("nats", "micro"),
    ("http", "/healthz"),
    ("http", "/health"),
    ("http", "/readiness"),
)
#: How long reading the audit consumer's state may hold up a scrape.
PENDING_TIMEOUT: Final = 1.0


class Metrics(Protocol):
    """Port: the service's metrics. Every method is cheap and never raises."""

    def nats_connection(self, connected: bool) -> None:
        """Whether the NATS connection is up now."""
        ...

    def nats_reconnected(self) -> None:
        """The NATS client reconnected after losing its connection."""
        ...

    def health_request(self, transport: str, endpoint: str, seconds: float) -> None:
        """A health request (one of :data:`HEALTH_ENDPOINTS`) was answered in ``seconds``."""
        ...

    def registry_operation(self, operation: str, status: str) -> None:
        """A registry use case finished (one of :data:`REGISTRY_OPERATIONS`, :data:`REGISTRY_STATUSES`)."""
        ...

    def audit_dead_lettered(self, reason: str) -> None:
        """The audit consumer stored a dead letter whose reason code is ``reason`` (e.g. ``bad_json``)."""
        ...

    def audit_consumer_pending(self, messages: int | None) -> None:
        """Messages of the audit stream the consumer has not acknowledged yet; ``None``: unknown."""
        ...


class NoMetrics:
    """A :class:`Metrics` that records nothing (the default of the use cases)."""

    def nats_connection(self, connected: bool) -> None:
        pass

    def nats_reconnected(self) -> None:
        pass

    def health_request(self, transport: str, endpoint: str, seconds: float) -> None:
        pass

    def registry_operation(self, operation: str, status: str) -> None:
        pass

    def audit_dead_lettered(self, reason: str) -> None:
        pass

    def audit_consumer_pending(self, messages: int | None) -> None:
        pass


def status_of(exc: Exception) -> str:
    """The ``status`` label of a failed operation: the error code the HTTP API answers with."""
    return exc.code if isinstance(exc, ServiceError) else "internal_error"


@contextmanager
def counted(metrics: Metrics, operation: str) -> Iterator[None]:
    """Count the block as one registry ``operation``: ``ok``, or the code of the error it raised."""
    try:
        yield
    except Exception as exc:
        metrics.registry_operation(operation, status_of(exc))
        raise
    metrics.registry_operation(operation, "ok")


@contextmanager
def timed(metrics: Metrics, transport: str, endpoint: str) -> Iterator[None]:
    """Record the block's duration as one health request (whether it succeeded or not)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.health_request(transport, endpoint, time.perf_counter() - started)


class ConnectionView(Protocol):
    @property
    def is_connected(self) -> bool: ...


class MetricsSampler:
    """Sets the sampled values just before the metrics are read. ``pending`` reads the audit consumer's
    unacknowledged messages (``None`` when the audit pipeline is off)."""

    def __init__(
        self,
        metrics: Metrics,
        connection: ConnectionView,
        pending: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._metrics = metrics
        self._connection = connection
        self._pending = pending

    async def sample(self) -> None:
        connected = self._connection.is_connected
        self._metrics.nats_connection(connected)
        self._metrics.audit_consumer_pending(await self._read_pending() if connected else None)

    async def _read_pending(self) -> int | None:
        if self._pending is None:
            return None
        try:
            return await asyncio.wait_for(self._pending(), PENDING_TIMEOUT)
        except Exception as exc:  # NATS away, consumer deleted, ...: unknown rather than stale
            logger.debug(
                "metrics: cannot read the audit consumer's pending messages: %s", describe_error(exc)
            )
            return None
