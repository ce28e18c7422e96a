"""Reading the reference service's ``/metrics`` as Prometheus would: scraped over HTTP and parsed by
``prometheus_client``'s own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY_OPERATIONS = ("list", "get", "create", "update", "delete")
REGISTRY_STATUSES = ("ok", "not_found", "conflict", "unavailable", "internal_error")
HEALTH_ENDPOINTS = (
    ("nats", "health-subject"),
    ("nats", "micro"),
    ("http", "/healthz"),
    ("http", "/health"),
    ("http", "/readiness"),
)


class Scrape:
    """One scrape: ``families`` by name (as the parser names them: counters without ``_total``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The value of the sample named ``sample`` with exactly ``labels``."""
        seen = []
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample:
                    if s.labels == labels:
                        return float(s.value)
                    seen.append(s.labels)
        raise AssertionError(f"no sample {sample}{labels} in the scrape; labels seen: {seen}")

    def registry_operations(self) -> dict[tuple[str, str], float]:
        return {
            (op, status): self.value("aegis_registry_operations_total", operation=op, status=status)
            for op in REGISTRY_OPERATIONS
            for status in REGISTRY_STATUSES
        }

    def health_counts(self) -> dict[tuple[str, str], float]:
        return {
            (transport, endpoint): self.value(
                "aegis_health_request_duration_seconds_count", transport=transport, endpoint=endpoint
            )
            for transport, endpoint in HEALTH_ENDPOINTS
        }


async def scrape(http: httpx.AsyncClient) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == TEXT_FORMAT
    return Scrape(response.text)


def delta(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict:
    """What changed between two scrapes (only the series that did)."""
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}
