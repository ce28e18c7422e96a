"""The :class:`~aegis_service.metrics.Metrics` port on ``prometheus_client``, in a registry of its own
(not the library's global one), so that several apps in one process each export only their own
metrics. Every labelled series the service can produce is created up front at zero, so a rate or an
alert has a series from the first scrape on."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from aegis_service.domain.events import REJECTION_CODES
from aegis_service.metrics import HEALTH_ENDPOINTS, REGISTRY_OPERATIONS, REGISTRY_STATUSES

#: Health replies come from memory: most take well under a millisecond.
HEALTH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class PrometheusMetrics:
    """The service's metrics (``aegis_*``) plus the process, platform and GC collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._connected = Gauge(
            "aegis_nats_connected", "1 while the NATS connection is up, else 0.", registry=self.registry
        )
        self._reconnects = Counter(
            "aegis_nats_reconnects", "NATS reconnects after a lost connection.", registry=self.registry
        )
        self._health = Histogram(
            "aegis_health_request_duration_seconds",
            "Time to answer a health request, by transport and endpoint.",
            ["transport", "endpoint"],
            buckets=HEALTH_BUCKETS,
            registry=self.registry,
        )
        self._registry_ops = Counter(
            "aegis_registry_operations",
            "Service-definition registry operations, by operation and outcome.",
            ["operation", "status"],
            registry=self.registry,
        )
        self._pending = Gauge(
            "aegis_audit_consumer_pending_messages",
            "Messages of stream AUDIT the audit consumer has not acknowledged yet (not yet delivered "
            "plus awaiting ack); NaN when unknown (no database configured, or NATS not answering).",
            registry=self.registry,
        )
        self._dead_letters = Counter(
            "aegis_audit_dead_letters",
            "Messages the audit consumer stored as dead letters, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self._create_series()

    def _create_series(self) -> None:
        for transport, endpoint in HEALTH_ENDPOINTS:
            self._health.labels(transport, endpoint)
        for operation in REGISTRY_OPERATIONS:
            for status in REGISTRY_STATUSES:
                self._registry_ops.labels(operation, status)
        for reason in REJECTION_CODES:
            self._dead_letters.labels(reason)
        self._pending.set(math.nan)

    # -- the Metrics port ---------------------------------------------------------------------------

    def nats_connection(self, connected: bool) -> None:
        self._connected.set(1 if connected else 0)

    def nats_reconnected(self) -> None:
        self._reconnects.inc()

    def health_request(self, transport: str, endpoint: str, seconds: float) -> None:
        self._health.labels(transport, endpoint).observe(seconds)

    def registry_operation(self, operation: str, status: str) -> None:
        self._registry_ops.labels(operation, status).inc()

    def audit_dead_lettered(self, reason: str) -> None:
        self._dead_letters.labels(reason).inc()

    def audit_consumer_pending(self, messages: int | None) -> None:
        self._pending.set(math.nan if messages is None else messages)

    # -- exposition ---------------------------------------------------------------------------------

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The registry as ``(body, content type)``: the Prometheus text format, or OpenMetrics when the
        ``Accept`` header asks for it."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
