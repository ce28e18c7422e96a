"""The health responder: replies to requests on the health subject (and ``<subject>.<instanceId>`` to
address one instance) with the health document, from memory."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aegis_service.adapters.nats.connection import NatsConnection
from aegis_service.health import HealthMonitor
from aegis_service.metrics import Metrics, NoMetrics, timed
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)


class SubscriptionDenied(Exception):
    """The server refused a subscription of the health responder (a permissions violation)."""


class HealthResponder:
    """The handler does no I/O besides the reply itself."""

    def __init__(
        self,
        monitor: HealthMonitor,
        connection: NatsConnection,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self._monitor = monitor
        self._connection = connection
        self._metrics = metrics or NoMetrics()
        self._subjects = (settings.health_subject, f"{settings.health_subject}.{settings.instance_id}")
        self._subscriptions: list[Subscription] = []

    @property
    def subjects(self) -> tuple[str, ...]:
        return self._subjects

    async def start(self) -> None:
        nc = self._connection.client
        for subject in self._subjects:
            self._subscriptions.append(await nc.subscribe(subject, cb=self._handle))
        # The server has the subscriptions before we call ourselves ready; it answers a denied one
        # with an error before the PONG (the second round trip covers servers that check later).
        await nc.flush(timeout=5)
        await nc.flush(timeout=5)
        denied = [s for s in self._subjects if any(f'subscription to "{s}"' in e for e in self._denials())]
        if denied:
            raise SubscriptionDenied(
                f"the NATS server denied the subscription to {', '.join(denied)} (permissions violation); "
                "this service cannot answer health checks"
            )
        logger.info("health responder listening on %s", ", ".join(self._subjects))

    def _denials(self) -> list[str]:
        return [error.lower() for error in self._connection.permission_errors]

    async def _handle(self, msg: Msg) -> None:
        if not msg.reply:
            return
        with timed(self._metrics, "nats", "health-subject"):
            try:
                await msg.respond(self._monitor.encode())
            except Exception as exc:  # never let a bad request kill the subscription
                logger.warning("health reply failed: %s", exc)
