"""Health report assembly from in-memory state (nothing is connected here)."""

from __future__ import annotations

import json

from fakes import FakeClock

from aegis_service.adapters.nats.connection import NatsConnection, redact_url
from aegis_service.adapters.nats.instances import KvInstanceRegistry
from aegis_service.adapters.nats.kv import KvGateway
from aegis_service.breaker import CircuitBreaker
from aegis_service.domain.models import HealthReport, InstanceStatus
from aegis_service.health import HealthMonitor
from aegis_service.registration import Registrar
from aegis_service.settings import load_settings


def build(clock: FakeClock) -> tuple[HealthMonitor, Registrar, CircuitBreaker]:
    settings = load_settings({"AEGIS_SERVICE_NAME": "demo", "AEGIS_INSTANCE_ID": "i1"})
    connection = NatsConnection(settings, clock=clock)
    breaker = CircuitBreaker("b", failure_threshold=1, reset_timeout=5, clock=clock)
    registrar = Registrar(settings, KvInstanceRegistry(KvGateway(connection, breaker, 1.0)), clock=clock)
    return HealthMonitor(settings, connection, registrar, breaker, clock=clock), registrar, breaker


def test_report_shape_matches_the_model(clock: FakeClock) -> None:
    monitor, _, _ = build(clock)
    clock.advance(12.5)
    report = monitor.report()
    HealthReport.model_validate(report)
    assert report["service"] == "demo" and report["instanceId"] == "i1"
    assert report["uptimeSeconds"] == 12.5
    assert report["nats"] == {"connected": False, "url": "nats://127.0.0.1:4222"}
    assert set(report["checks"]) == {"nats", "kvRegistry", "publishBreaker"}
    assert json.loads(monitor.encode()) == report


def test_disconnected_is_unhealthy(clock: FakeClock) -> None:
    monitor, _, _ = build(clock)
    report = monitor.report()
    assert report["status"] == "unhealthy"
    assert report["checks"]["nats"]["status"] == "unhealthy"


def test_registry_and_breaker_states_are_reported(clock: FakeClock) -> None:
    monitor, registrar, breaker = build(clock)
    assert monitor.report()["checks"]["kvRegistry"]["status"] == "degraded"  # STANDBY: not registered yet
    registrar.state.status = InstanceStatus.ACTIVE
    registrar.state.revision = 4
    registrar.state.last_success = clock()
    assert monitor.report()["checks"]["kvRegistry"] == {
        "status": "healthy",
        "detail": "demo.i1 registered (revision 4), last heartbeat 0.0s ago",
    }
    registrar.state.status = InstanceStatus.UNHEALTHY
    registrar.state.consecutive_failures = 3
    registrar.state.last_error = "timeout"
    assert monitor.report()["checks"]["kvRegistry"]["status"] == "unhealthy"
    breaker.before_call()
    breaker.record_failure()
    assert monitor.report()["checks"]["publishBreaker"] == {
        "status": "degraded",
        "detail": "open, retry in 5.0s",
    }


def test_urls_never_show_credentials() -> None:
    assert redact_url("nats://user:pw@host:4222") == "nats://host:4222"
    assert redact_url("tls://host:4443") == "tls://host:4443"
