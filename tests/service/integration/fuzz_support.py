"""Run schemathesis against a served OpenAPI schema: the one command line both fuzz tests share."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SEED = "20261122"  # fixed: a failure is reproducible with the same command


def fuzz_openapi(
    base_url: str, tmp_path: Path, *, config: str, max_examples: int, min_cases: int, only: str | None = None
) -> int:
    """Fuzz ``base_url``'s ``/openapi.json`` with every check; fail on a non-zero exit, a 500 or
    fewer than ``min_cases`` generated cases (a run that tests nothing must not pass).  ``only`` is a
    path regex.  Returns the number of generated cases."""
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config_file),
        "run",
        f"{base_url}/openapi.json",
        *(["--include-path-regex", only] if only else []),
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        SEED,
        "--workers",
        "1",  # with 2, schemathesis itself crashed once (CPython "AST constructor recursion depth")
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated, output[-3000:]
    cases = int(generated.group(1))
    assert cases >= min_cases, f"only {cases} cases generated (want >= {min_cases})\n{output[-3000:]}"
    assert "500 Internal Server Error" not in output
    print(f"schemathesis: {cases} test cases")
    return cases
