"""Health, built purely from in-memory state (no I/O): the health document (served over NATS
request/reply and HTTP ``/healthz``), and the verdicts of the HTTP probes ``/health`` and ``/readiness``.

Readiness: NATS connected and, when a database is configured, the database reachable with every required
table present and migrations at head. Without a database the audit pipeline is off by configuration, not
broken: readiness is 200 and says ``"database": {"status": "not_configured"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from aegis_service.breaker import BreakerState, CircuitBreaker
from aegis_service.domain.models import HealthStatus, InstanceStatus, SchemaStatus
from aegis_service.registration import Registrar
from aegis_service.settings import Settings

_RANK: dict[HealthStatus, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


class ConnectionState(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def disconnected_since(self) -> float | None: ...

    @property
    def last_error(self) -> str | None: ...


class Connection(Protocol):
    """Port: what health needs to know about the NATS connection (read from memory)."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def url(self) -> str: ...

    @property
    def state(self) -> ConnectionState: ...


class SchemaProbe(Protocol):
    """Port: the database's schema status (never raises: an unreachable database is a status)."""

    async def status(self) -> SchemaStatus: ...


def nats_status(connection: Connection) -> dict[str, Any]:
    return {"connected": connection.is_connected, "url": connection.url}


def _check(status: HealthStatus, detail: str) -> dict[str, Any]:
    return {"status": status, "detail": detail}


class HealthMonitor:
    def __init__(
        self,
        settings: Settings,
        connection: Connection,
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
            "nats": nats_status(self._connection),
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


class Probes:
    """``/health`` (NATS, database and migration status; always answers) and ``/readiness`` (ready only
    when the service can do its job). ``database`` is ``None`` when none is configured."""

    def __init__(self, connection: Connection, database: SchemaProbe | None, head: Callable[[], int]) -> None:
        self._connection = connection
        self._database = database
        self._head = head

    async def health(self) -> dict[str, Any]:
        nats = nats_status(self._connection)
        db = self._database_check(await self._schema())
        healthy = nats["connected"] and db["status"] in ("up", "not_configured")
        return {"status": "healthy" if healthy else "unhealthy", "nats": nats, "database": db}

    async def readiness(self) -> dict[str, Any]:
        """``{"ready", "reasons", "database"}``; ``reasons`` lists what keeps the service from being ready."""
        status = await self._schema()
        reasons = [] if self._connection.is_connected else ["nats: not connected"]
        if status is not None:
            reasons += [f"database: {problem}" for problem in status.problems()]
        return {"ready": not reasons, "reasons": reasons, "database": self._database_check(status)}

    async def _schema(self) -> SchemaStatus | None:
        return await self._database.status() if self._database is not None else None

    def _database_check(self, status: SchemaStatus | None) -> dict[str, Any]:
        if status is None:
            return {"status": "not_configured", "migrationVersion": None, "headVersion": self._head()}
        check: dict[str, Any] = {
            "status": "up" if status.reachable else "down",
            "migrationVersion": status.version,
            "headVersion": status.head,
        }
        if status.missing_tables:
            check["missingTables"] = list(status.missing_tables)
        if status.error:
            check["detail"] = status.error
        return check
