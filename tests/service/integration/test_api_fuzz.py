"""Fuzz the registry API from its own OpenAPI schema (schemathesis): no 5xx, no schema violation."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_support import fuzz_openapi

MIN_CASES = 500
CONFIG = """
[checks.missing_required_header]
# PUT without If-Match is answered 428 Precondition Required by design.
expected-statuses = [428]

[[operations]]
# A page cursor is opaque: the schema gives its alphabet and length, but only a nextCursor the API
# issued (the base64 of a service name) is accepted; any other string of that shape is 422 naming
# `cursor` by design.
# (One filter, the operation's name: separate include-path and include-method filters are OR'ed.)
include-name = "GET /api/services"
checks.positive_data_acceptance.expected-statuses = [200, 422]
"""


@pytest.mark.nats_secure
def test_api_fuzzed_from_its_openapi_schema(aegis_app, tmp_path: Path):
    fuzz_openapi(aegis_app.http_url, tmp_path, config=CONFIG, max_examples=150, min_cases=MIN_CASES)
