"""Instance registration under ``<serviceName>.<instanceId>`` in the instance registry (KV bucket
``service-instances``) and heartbeats.

Each write carries a TTL, so the entry disappears unless a heartbeat refreshes it. A heartbeat
that finds the entry gone (expired or deleted) re-creates it. Consecutive heartbeat failures back off with
jitter; after :data:`UNHEALTHY_AFTER` of them the instance reports ``UNHEALTHY`` until one succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aegis_service.backoff import full_jitter
from aegis_service.domain.errors import RevisionMismatch, describe_error
from aegis_service.domain.models import InstanceStatus, ServiceInstance, utc_now
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)

UNHEALTHY_AFTER = 3
MIN_RETRY_DELAY = 0.05


class InstanceRegistry(Protocol):
    """Port: where instances announce themselves; an entry expires unless rewritten within its TTL."""

    @property
    def name(self) -> str:
        """For log lines, e.g. ``KV bucket service-instances``."""
        ...

    async def put(
        self, key: str, instance: ServiceInstance, ttl: float, expected_revision: int | None = None
    ) -> int:
        """Write the entry and return its revision. With ``expected_revision`` only if that is still the
        entry's latest revision, else :class:`RevisionMismatch` (e.g. it expired or was deleted)."""
        ...

    async def remove(self, key: str, ttl: float) -> None:
        """Remove the entry (whatever marker the removal leaves expires after ``ttl``)."""
        ...


@dataclass
class RegistrationState:
    status: InstanceStatus = InstanceStatus.STANDBY
    revision: int | None = None
    last_heartbeat: datetime | None = None
    last_success: float | None = None  # monotonic
    consecutive_failures: int = 0
    last_error: str | None = None


class Registrar:
    def __init__(
        self,
        settings: Settings,
        registry: InstanceRegistry,
        metadata: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._metadata = metadata
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.state = RegistrationState()

    @property
    def key(self) -> str:
        return self._settings.instance_key

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self._metadata = metadata

    def document(self, status: InstanceStatus) -> ServiceInstance:
        return ServiceInstance(
            service_name=self._settings.service_name,
            instance_id=self._settings.instance_id,
            version=self._settings.service_version,
            status=status,
            last_heartbeat=utc_now(),
            metadata=self._metadata,
        )

    async def register(self) -> None:
        """First write; raises on failure (startup decides whether to retry)."""
        await self._write()
        logger.info(
            "registered %s in %s (revision %s, TTL %gs)",
            self.key,
            self._registry.name,
            self.state.revision,
            self._settings.registration_ttl,
        )

    async def heartbeat(self) -> bool:
        """One heartbeat; returns success and updates the state (never raises, except cancellation)."""
        try:
            await self._write()
        except Exception as exc:
            state = self.state
            state.consecutive_failures += 1
            state.last_error = describe_error(exc)
            if state.consecutive_failures >= UNHEALTHY_AFTER and state.status is not InstanceStatus.UNHEALTHY:
                state.status = InstanceStatus.UNHEALTHY
                logger.error(
                    "registration heartbeat failed %d times in a row, instance is UNHEALTHY: %s",
                    state.consecutive_failures,
                    state.last_error,
                )
            elif state.consecutive_failures == 1:
                logger.warning("registration heartbeat failed: %s", state.last_error)
            else:  # keep an outage from flooding the log
                logger.debug(
                    "registration heartbeat failed (%d in a row): %s",
                    state.consecutive_failures,
                    state.last_error,
                )
            return False
        return True

    def trigger(self) -> None:
        """Heartbeat now (e.g. right after a reconnect) instead of waiting for the interval."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="registration-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def deregister(self) -> None:
        """Remove the entry; the marker the removal leaves expires after the TTL."""
        await self._registry.remove(self.key, self._settings.registration_ttl)
        self.state.status = InstanceStatus.STANDBY
        self.state.revision = None
        logger.info("deregistered %s", self.key)

    # -- internals ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        interval = self._settings.heartbeat_interval
        delay = interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if await self.heartbeat():
                delay = interval
            else:
                base = min(1.0, interval / 4)
                attempt = self.state.consecutive_failures - 1
                delay = max(MIN_RETRY_DELAY, full_jitter(attempt, base, interval, rng=self._rng))

    async def _write(self) -> None:
        document = self.document(InstanceStatus.ACTIVE)
        ttl = self._settings.registration_ttl
        key = self.key
        try:
            revision = await self._registry.put(key, document, ttl, self.state.revision)
        except RevisionMismatch:
            logger.warning("registry entry %s was lost (expired or deleted); re-creating it", key)
            revision = await self._registry.put(key, document, ttl)
        state = self.state
        if state.status is InstanceStatus.UNHEALTHY:
            logger.info(
                "registration heartbeat recovered after %d failure(s); ACTIVE", state.consecutive_failures
            )
        state.revision = revision
        state.status = InstanceStatus.ACTIVE
        state.last_heartbeat = document.last_heartbeat
        state.last_success = self._clock()
        state.consecutive_failures = 0
        state.last_error = None
