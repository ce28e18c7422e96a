"""Smoke test of the benchmark CLI: ``python -m bench --only nats --quick``.

It starts real nats-servers (the plugin's path and a bare Popen) and checks
the shape of the JSON only: timings on a shared CI machine are not asserted.
"""

from __future__ import annotations

import json
import numbers
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: ``python -m bench`` runs from the repo's root (bench/ is a folder of the repo, not installed).
REPO = Path(__file__).resolve().parents[3]
CONFIGS = ("plain_js", "tls_userpass_js", "mtls_userpass_js")
CONTENDERS = ("aegis", "bare_popen")
STATS = ("median_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "mean_ms")


def test_bench_nats_quick_prints_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nats", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
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


def _run_bench(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout)


def _assert_summary(summary, n):
    assert summary["n"] == n
    for key in STATS:
        assert isinstance(summary[key], numbers.Real), (key, summary)
    assert 0 < summary["min_ms"] <= summary["median_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_bench_health_quick_prints_json():
    document = _run_bench("--only", "health", "--quick")
    assert document["metadata"]["suites"] == ["health"]
    suite = document["suites"]["health"]
    assert "error" not in suite
    assert suite["targets"] == {"service_p99_ms": 2.0, "p99_ratio_max": 2.0}
    assert suite["requests_per_contender"] == 200
    assert suite["errors"] == {"service": 0, "bare": 0}
    for contender in ("service", "bare"):
        _assert_summary(suite[contender], 200)
    assert suite["subjects"]["service"].startswith("health.check.")
    assert suite["service_status"] == "healthy"
    assert isinstance(suite["p99_ratio"], numbers.Real)
    assert isinstance(suite["median_ratio"], numbers.Real)
    assert isinstance(suite["meets_targets"], bool)


def test_bench_registry_quick_prints_json():
    document = _run_bench("--only", "registry", "--quick")
    assert document["metadata"]["suites"] == ["registry"]
    suite = document["suites"]["registry"]
    assert "error" not in suite
    assert suite["targets"] == {"p99_ms": 50, "errors": 0}
    assert suite["clients"] == 100
    assert suite["requests_planned"] == 400
    for run in (suite, suite["httpx_reference"]):
        assert run["errors"] == 0, run["error_samples"]
        assert run["requests"] == 400
        _assert_summary(run["overall"], 400)
        for operation in ("create", "read", "update", "delete"):
            _assert_summary(run["operations"][operation], 100)
        assert run["throughput_rps"] > 0
    assert isinstance(suite["meets_targets"], bool)


def test_bench_postgres_quick_prints_json():
    document = _run_bench("--only", "postgres", "--quick")
    assert document["metadata"]["suites"] == ["postgres"]
    suite = document["suites"]["postgres"]
    assert "error" not in suite
    assert suite["postgres"]["version"]
    assert suite["targets"] == {
        "warm_start_median_ms": 500,
        "postgres_db_median_ms": 5,
        "rollback_median_ms": 2,
    }
    assert suite["reps"] == {
        "server_cold_start": 1,
        "server_warm_start": 2,
        "postgres_db": 3,
        "rollback_mode": 20,
    }
    results = suite["results"]
    assert results["server_cold_start"]["cache_hits"] == 0
    assert results["server_warm_start"]["cache_hits"] == 2
    _assert_summary(results["server_cold_start"], 1)
    _assert_summary(results["server_warm_start"], 2)
    _assert_summary(results["postgres_db"], 3)
    assert 0 <= results["postgres_db"]["cloned_on_demand"] <= 3
    _assert_summary(results["postgres_db_clone"], 3)
    _assert_summary(results["postgres_db_drop"], 3)
    _assert_summary(results["rollback_mode"], 20)
    _assert_summary(results["rollback_mode_with_connect"], 20)
    if suite["pytest_postgresql"] == "not installed":
        assert "skipped" in results["pytest_postgresql_db"]
    else:
        _assert_summary(results["pytest_postgresql_db"], 3)
        _assert_summary(results["pytest_postgresql_db_beside_clone"], 3)
        _assert_summary(results["pytest_postgresql_db_drop"], 3)
    assert set(suite["target_checks"]) == set(suite["targets"])
    assert isinstance(suite["meets_targets"], bool)


def test_bench_audit_quick_prints_json():
    document = _run_bench("--only", "audit", "--quick", "--events", "500")
    assert document["metadata"]["suites"] == ["audit"]
    suite = document["suites"]["audit"]
    assert "error" not in suite
    assert suite["targets"] == {"events_per_s": 10_000, "lost": 0, "duplicates": 0}
    assert suite["events"] == 500
    for run in (suite["stream"], suite["outbox"]):
        assert run["events"] == 500
        assert (run["lost"], run["duplicates"]) == (0, 0)
        assert run["events_per_s"] > 0 and run["elapsed_s"] > 0
    assert suite["meets_targets"] is None


@pytest.mark.docker
def test_bench_containers_quick_prints_json():
    from pytest_aegis.errors import BackendUnavailable

    try:
        from pytest_aegis.backends.docker.engine import Engine

        Engine.connect().close()
    except BackendUnavailable as exc:
        if os.environ.get("AEGIS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"no Docker engine (AEGIS_REQUIRE_DOCKER=1): {exc}")
        pytest.skip(f"no Docker engine: {str(exc).splitlines()[0]}")
    document = _run_bench("--only", "containers", "--reps", "2", "--quick")
    suite = document["suites"]["containers"]
    assert "error" not in suite, suite.get("error")
    assert suite["engine"]["version"] and suite["images"]["nats"]
    assert set(suite["configs"]) == {"nats_plain_js", "nats_tls_userpass_js", "postgres"}
    for config in suite["configs"].values():
        for contender in ("aegis", "testcontainers"):
            _assert_summary(config[contender], 2)
        assert isinstance(config["ratio_aegis_to_testcontainers"], numbers.Real)
    postgres = suite["configs"]["postgres"]
    for which in ("first", "final"):
        line = postgres[f"{which}_ready_line"]
        assert line["aegis"]["median_ms"] > 0 and line["testcontainers"]["median_ms"] > 0
        assert isinstance(postgres[f"ratio_aegis_to_its_{which}_ready_line"], numbers.Real)
    first, final = (postgres[f"{which}_ready_line"]["aegis"]["median_ms"] for which in ("first", "final"))
    assert first <= final
    assert isinstance(suite["meets_targets"], bool)


def test_bench_startup_quick_prints_json():
    document = _run_bench("--only", "startup", "--quick")
    suite = document["suites"]["startup"]
    assert "error" not in suite
    assert set(suite["results"]) == {"with_plugin", "without_plugin"}
    for name in ("with_plugin", "without_plugin"):
        _assert_summary(suite["results"][name], 5)
    assert isinstance(suite["overhead_ms"]["median_of_pairs"], numbers.Real)
    assert suite["targets"]["overhead_ms_at_most"] >= 50
    assert isinstance(suite["meets_targets"], bool)


def test_bench_cluster_quick_prints_json():
    document = _run_bench("--only", "cluster", "--quick")
    assert document["metadata"]["suites"] == ["cluster"]
    suite = document["suites"]["cluster"]
    assert "error" not in suite, suite.get("error")
    assert suite["targets"] == {"healthy_median_ms": 2000, "ratio_max": 1.2, "proxy_p99_delta_ms": 0.3}
    healthy, rtt = suite["results"]["cluster_healthy"], suite["results"]["proxy_health_rtt"]
    _assert_summary(healthy["aegis"], 2)
    _assert_summary(healthy["bare_popen"], 2)
    assert healthy["ratio"] > 0
    _assert_summary(rtt["direct"], 100)
    _assert_summary(rtt["proxy"], 100)
    assert set(suite["target_checks"]) == set(suite["targets"])
    assert isinstance(suite["meets_targets"], bool)


def test_bench_per_test_quick_prints_json():
    document = _run_bench("--only", "per_test", "--quick")
    suite = document["suites"]["per_test"]
    assert "error" not in suite, suite.get("error")
    assert set(suite["results"]) == {"plugin", "hand_written"}
    for name in ("plugin", "hand_written"):
        _assert_summary(suite["results"][name], 2)
    assert suite["tests"] == 20 and suite["targets"] == {"ratio_at_most": 1.1}
    assert suite["ratio"]["of_medians"] > 0 and isinstance(suite["extra_ms_per_test"], numbers.Real)
    assert isinstance(suite["meets_targets"], bool)
