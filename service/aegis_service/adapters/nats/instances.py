"""The :class:`~aegis_service.registration.InstanceRegistry` on KV bucket ``service-instances``: every
write carries a per-message TTL (``Nats-TTL``), so an entry no heartbeat refreshes disappears."""

from __future__ import annotations

import nats.js.errors
from nats.js.kv import KeyValue

from aegis_service.adapters.nats.kv import INSTANCES_BUCKET, KvGateway, publish_with_ttl, purge_with_ttl
from aegis_service.domain.errors import RevisionMismatch
from aegis_service.domain.models import ServiceInstance


class KvInstanceRegistry:
    name = f"KV bucket {INSTANCES_BUCKET}"

    def __init__(self, gateway: KvGateway) -> None:
        self._gateway = gateway

    async def put(
        self, key: str, instance: ServiceInstance, ttl: float, expected_revision: int | None = None
    ) -> int:
        payload = instance.model_dump_json(exclude_none=True).encode()

        async def write(_kv: KeyValue) -> int:
            js = self._gateway.js
            return await publish_with_ttl(
                js, INSTANCES_BUCKET, key, payload, ttl, expected_revision=expected_revision
            )

        try:
            return await self._gateway.run(INSTANCES_BUCKET, write, "registration heartbeat")
        except nats.js.errors.KeyWrongLastSequenceError:
            raise RevisionMismatch(f"{key} is not at revision {expected_revision}") from None

    async def remove(self, key: str, ttl: float) -> None:
        async def purge(_kv: KeyValue) -> None:
            await purge_with_ttl(self._gateway.js, INSTANCES_BUCKET, key, ttl)

        await self._gateway.run(INSTANCES_BUCKET, purge, "deregister instance")
