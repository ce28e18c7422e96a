"""The metrics port and its Prometheus adapter, the page cursor and the registry's pages, without
servers (the integration suite scrapes a running service: tests/service/integration/test_metrics.py)."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aegis_service.adapters.http.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from aegis_service.adapters.http.errors import InvalidField
from aegis_service.adapters.memory import MemoryDefinitionStore
from aegis_service.adapters.prometheus import PrometheusMetrics
from aegis_service.definitions import DefinitionService
from aegis_service.domain.errors import Conflict, CorruptEntry, NotFound, Unavailable
from aegis_service.domain.models import ServiceDefinitionInput
from aegis_service.metrics import MetricsSampler, counted


def value(metrics: PrometheusMetrics, sample: str, **labels: str) -> float:
    text = metrics.render(None)[0].decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no {sample}{labels}")


def test_two_apps_in_one_process_keep_their_own_metrics() -> None:
    first, second = PrometheusMetrics(), PrometheusMetrics()  # the global registry would refuse this
    first.nats_reconnected()
    assert value(first, "aegis_nats_reconnects_total") == 1
    assert value(second, "aegis_nats_reconnects_total") == 0


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("x"), "not_found"),
        (Conflict("x"), "conflict"),
        (Unavailable("x"), "unavailable"),
        (CorruptEntry("x"), "internal_error"),
        (RuntimeError("x"), "internal_error"),
    ],
)
def test_a_failed_operation_is_counted_with_its_error_code_and_still_raises(
    error: Exception, status: str
) -> None:
    metrics = PrometheusMetrics()
    with pytest.raises(type(error)), counted(metrics, "get"):
        raise error
    assert value(metrics, "aegis_registry_operations_total", operation="get", status=status) == 1
    assert value(metrics, "aegis_registry_operations_total", operation="get", status="ok") == 0


class Connection:
    def __init__(self, connected: bool) -> None:
        self.is_connected = connected


def test_pending_messages_are_unknown_when_they_cannot_be_read() -> None:
    async def broken() -> int:
        raise TimeoutError

    async def five() -> int:
        return 5

    metrics = PrometheusMetrics()
    asyncio.run(MetricsSampler(metrics, Connection(True), five).sample())
    assert value(metrics, "aegis_audit_consumer_pending_messages") == 5
    assert value(metrics, "aegis_nats_connected") == 1
    asyncio.run(MetricsSampler(metrics, Connection(True), broken).sample())
    assert math.isnan(value(metrics, "aegis_audit_consumer_pending_messages"))
    asyncio.run(MetricsSampler(metrics, Connection(False), five).sample())  # not even asked
    assert math.isnan(value(metrics, "aegis_audit_consumer_pending_messages"))
    assert value(metrics, "aegis_nats_connected") == 0


@pytest.mark.parametrize("name", ["abc", "pg-alpha", "a" + "z9-" * 21, "z-0"])
def test_a_cursor_decodes_to_the_name_it_was_made_from(name: str) -> None:
    cursor = encode_cursor(name)
    assert re.fullmatch(CURSOR_PATTERN, cursor), cursor
    assert decode_cursor(cursor) == name


@pytest.mark.parametrize("cursor", ["YWJjZ", "QUJD", "__79_A", "cGctYWxwaGF", "cGctYWxwaGEK"])
def test_anything_else_is_refused_naming_the_cursor(cursor: str) -> None:
    with pytest.raises(InvalidField) as refused:
        decode_cursor(cursor)
    assert refused.value.field == "cursor"


def test_pages_partition_the_definitions_in_name_order() -> None:
    async def scenario() -> list[list[str]]:
        service = DefinitionService(MemoryDefinitionStore())
        for name in ("ccc", "aaa", "eee", "bbb", "ddd"):
            await service.create(ServiceDefinitionInput(serviceName=name, owner="o", version="1.0.0"))
        pages, after = [], None
        while True:
            page = await service.page(after, 2)
            pages.append([item.service_name for item in page.items])
            if page.next_after is None:
                return pages
            after = page.next_after

    assert asyncio.run(scenario()) == [["aaa", "bbb"], ["ccc", "ddd"], ["eee"]]
