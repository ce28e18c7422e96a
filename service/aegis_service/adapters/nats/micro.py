"""The NATS services protocol (ADR-32, with nats-py's ``nats.micro``): the service answers
``$SRV.PING``, ``$SRV.INFO`` and ``$SRV.STATS`` under its name (and its instance id), and serves
one endpoint, ``health`` on ``<service name>.health``: the health document, from one instance of
the service (the endpoint's queue group), where the health subject is answered by every instance.

A server that denies the ``$SRV`` subjects does not stop the service from starting: the health
subject is what it must answer (see :mod:`.health`).
"""

from __future__ import annotations

import logging

from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service

from aegis_service.adapters.nats.connection import NatsConnection
from aegis_service.health import HealthMonitor
from aegis_service.metrics import Metrics, NoMetrics, timed
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)

ENDPOINT = "health"


class MicroService:
    """The service's ADR-32 identity; its id is nats.micro's (the protocol makes ids, not the
    caller), and its metadata carries ``instanceId``, the registry's id of this instance."""

    def __init__(
        self,
        monitor: HealthMonitor,
        connection: NatsConnection,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self._monitor = monitor
        self._connection = connection
        self._settings = settings
        self._metrics = metrics or NoMetrics()
        self._service: Service | None = None

    @property
    def endpoint_subject(self) -> str:
        return f"{self._settings.service_name}.{ENDPOINT}"

    async def start(self) -> None:
        s = self._settings
        self._service = await add_service(
            self._connection.client,
            name=s.service_name,
            version=s.service_version,
            description="pytest-aegis reference service",
            metadata={"instanceId": s.instance_id},
        )
        await self._service.add_endpoint(
            EndpointConfig(name=ENDPOINT, subject=self.endpoint_subject, handler=self._health)
        )
        logger.info("services protocol: %s (id %s), endpoint %s", s.service_name, self._service.id, ENDPOINT)

    async def _health(self, request: Request) -> None:
        with timed(self._metrics, "nats", "micro"):
            await request.respond(self._monitor.encode())

    async def stop(self) -> None:
        if self._service is not None:
            service, self._service = self._service, None
            await service.stop()
