"""Health: a report built purely from in-memory state (no I/O), served over NATS request/reply on the
health subject (and ``<subject>.<instanceId>`` to address one instance) and over HTTP ``/healthz``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aegis_service.breaker import BreakerState, CircuitBreaker
from aegis_service.connection import NatsConnection
from aegis_service.models import HealthStatus, InstanceStatus
from aegis_service.registration import Registrar
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)

_RANK: dict[HealthStatus, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def _check(status: HealthStatus, detail: str) -> dict[str, Any]:
    return {"status": status, "detail": detail}


class HealthMonitor:
    def __init__(
        self,
        settings: Settings,
        connection: NatsConnection,
        registrar: Registrar,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._connection = connection
        self._registrar = registrar
        self._breaker = breaker
        self._clock = clock
        self._started = clock()

    def report(self) -> dict[str, Any]:
        """The health document (camelCase dict, JSON-ready). Cheap: reads attributes only."""
        now = self._clock()
        checks = {
            "nats": self._nats_check(now),
            "kvRegistry": self._registry_check(now),
            "publishBreaker": self._breaker_check(),
        }
        status = max((check["status"] for check in checks.values()), key=_RANK.__getitem__)
        return {
            "service": self._settings.service_name,
            "instanceId": self._settings.instance_id,
            "version": self._settings.service_version,
            "status": status,
            "nats": {"connected": self._connection.is_connected, "url": self._connection.url},
            "uptimeSeconds": round(now - self._started, 3),
            "checks": checks,
        }

    def encode(self) -> bytes:
        return json.dumps(self.report(), separators=(",", ":")).encode()

    def _nats_check(self, now: float) -> dict[str, Any]:
        state = self._connection.state
        if self._connection.is_connected:
            return _check("healthy", f"connected to {self._connection.url}")
        if state.disconnected_since is not None:
            return _check(
                "unhealthy",
                f"disconnected from {state.url} for {now - state.disconnected_since:.1f}s, reconnecting"
                + (f" (last error: {state.last_error})" if state.last_error else ""),
            )
        return _check("unhealthy", f"not connected to {state.url}")

    def _registry_check(self, now: float) -> dict[str, Any]:
        state = self._registrar.state
        key = self._registrar.key
        if state.status is InstanceStatus.STANDBY:
            return _check("degraded", f"{key} not registered")
        if state.status is InstanceStatus.UNHEALTHY or state.consecutive_failures:
            status: HealthStatus = "unhealthy" if state.status is InstanceStatus.UNHEALTHY else "degraded"
            return _check(
                status,
                f"{key}: {state.consecutive_failures} heartbeat failure(s) in a row: {state.last_error}",
            )
        age = "" if state.last_success is None else f", last heartbeat {now - state.last_success:.1f}s ago"
        return _check("healthy", f"{key} registered (revision {state.revision}){age}")

    def _breaker_check(self) -> dict[str, Any]:
        state = self._breaker.state
        if state is BreakerState.CLOSED:
            return _check("healthy", "closed")
        if state is BreakerState.OPEN:
            return _check("degraded", f"open, retry in {self._breaker.retry_after():.1f}s")
        return _check("degraded", "half-open, probing")


class HealthResponder:
    """Replies to health requests from memory; the handler does no I/O besides the reply itself."""

    def __init__(self, monitor: HealthMonitor, connection: NatsConnection, settings: Settings) -> None:
        self._monitor = monitor
        self._connection = connection
        self._subjects = (settings.health_subject, f"{settings.health_subject}.{settings.instance_id}")
        self._subscriptions: list[Subscription] = []

    @property
    def subjects(self) -> tuple[str, ...]:
        return self._subjects

    async def start(self) -> None:
        nc = self._connection.client
        for subject in self._subjects:
            self._subscriptions.append(await nc.subscribe(subject, cb=self._handle))
        await nc.flush(timeout=5)  # the server has the subscriptions before we call ourselves ready
        logger.info("health responder listening on %s", ", ".join(self._subjects))

    async def _handle(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(self._monitor.encode())
        except Exception as exc:  # never let a bad request kill the subscription
            logger.warning("health reply failed: %s", exc)
