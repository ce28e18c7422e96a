"""Fuzz the audit pipeline's HTTP routes (only mounted with a database) from the OpenAPI schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

MIN_CASES = 300
CONFIG = """
[[operations]]
# A time window with until < since matches the schema (no JSON Schema rule can relate two query
# parameters) and is answered 422 naming `until` by design.
include-path = "/api/audit-events"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = [200, 422]
"""
ROUTES = "^/(api/access-grants|api/audit-events|health|readiness|ping)"


def test_audit_routes_fuzzed_from_their_openapi_schema(audit_stack, tmp_path: Path):
    stack = audit_stack()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{stack.app.http_url}/openapi.json",
        "--include-path-regex",
        ROUTES,
        "--checks",
        "all",
        "--max-examples",
        "100",
        "--seed",
        "20261122",
        "--workers",
        "1",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= MIN_CASES, output[-3000:]
    assert "500 Internal Server Error" not in output
