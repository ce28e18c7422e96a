"""Fuzz the audit pipeline's HTTP routes (only mounted with a database) from the OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

from fuzz_support import fuzz_openapi

MIN_CASES = 300
CONFIG = """
[[operations]]
# A time window with until < since matches the schema (no JSON Schema rule can relate two query
# parameters) and is answered 422 naming `until` by design.
# (One filter, the operation's name: separate include-path and include-method filters are OR'ed,
# which let every GET, /health included, answer 422.)
include-name = "GET /api/audit-events"
checks.positive_data_acceptance.expected-statuses = [200, 422]
"""
ROUTES = "^/(api/access-grants|api/audit-events|health|readiness|ping)"


def test_audit_routes_fuzzed_from_their_openapi_schema(audit_stack, tmp_path: Path):
    stack = audit_stack()
    fuzz_openapi(
        stack.app.http_url, tmp_path, config=CONFIG, max_examples=100, min_cases=MIN_CASES, only=ROUTES
    )
