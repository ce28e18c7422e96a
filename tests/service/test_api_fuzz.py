"""Fuzz the registry API from its own OpenAPI schema (schemathesis): no 5xx, no schema violation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

MIN_CASES = 500
CONFIG = """
[checks.missing_required_header]
# PUT without If-Match is answered 428 Precondition Required by design.
expected-statuses = [428]
"""


@pytest.mark.nats_secure
def test_api_fuzzed_from_its_openapi_schema(aegis_app, tmp_path: Path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{aegis_app.http_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "150",
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
    assert generated, output[-3000:]
    assert int(generated.group(1)) >= MIN_CASES, output[-3000:]
    print(f"schemathesis: {generated.group(0)} test cases")
    assert "500 Internal Server Error" not in output
