"""Smoke test of the benchmark CLI: ``python -m pytest_aegis.bench --only nats --quick``.

It starts real nats-servers (the plugin's path and a bare Popen) and checks
the shape of the JSON only: timings on a shared CI machine are not asserted.
"""

from __future__ import annotations

import json
import numbers
import subprocess
import sys

CONFIGS = ("plain_js", "tls_userpass_js", "mtls_userpass_js")
CONTENDERS = ("aegis", "bare_popen")
STATS = ("median_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "mean_ms")


def test_bench_nats_quick_prints_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_aegis.bench", "--only", "nats", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    document = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == document

    metadata = document["metadata"]
    assert metadata["quick"] is True
    assert metadata["reps"] == 5
    assert metadata["suites"] == ["nats"]
    assert "--quick" in metadata["command"]

    suite = document["suites"]["nats"]
    assert "error" not in suite
    assert suite["nats_server"]["version"]
    assert suite["targets"] == {"tls_userpass_js_median_ms": 15, "ratio_max": 1.5}
    assert set(suite["configs"]) == set(CONFIGS)
    for name in CONFIGS:
        config = suite["configs"][name]
        for contender in CONTENDERS:
            summary = config[contender]
            assert summary["n"] == 5
            for key in STATS:
                assert isinstance(summary[key], numbers.Real), (name, contender, key, summary)
            assert summary["median_ms"] > 0
            assert len(config["samples_ms"][contender]) == 5
        assert isinstance(config["ratio"], numbers.Real)
    assert isinstance(suite["configs"]["tls_userpass_js"]["meets_targets"], bool)
    assert suite["configs"]["plain_js"]["meets_targets"] is None
    assert suite["configs"]["mtls_userpass_js"]["meets_targets"] is None
