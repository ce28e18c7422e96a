"""Suite ``startup``: what loading the plugin costs a pytest session that uses none of it.

Two contenders run the same trivial one-test file in a fresh process each, interleaved
(A B A B ...), in a scratch directory without a pytest configuration, with the automatic loading
of installed plugins off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``: this development environment also
has schemathesis, hypothesis and pytest-postgresql, whose loading would swamp the figure) and
pytest-asyncio loaded in both:

``with_plugin``
    ``python -m pytest -p pytest_asyncio.plugin -p pytest_aegis -q test_trivial.py``: the plugin
    imports, registers its options, markers, hooks and fixtures, sweeps the state directory.
``without_plugin``
    the same without ``-p pytest_aegis``.

Both run with bytecode caches (``PYTHONDONTWRITEBYTECODE`` is dropped from their environment;
the discarded warm-up writes the caches), as an installed plugin runs.  The figure is the
overhead: the median of the paired differences (with - without), each pair measured back to
back, so a drifting machine cancels out.  The target: at most 50 ms, or 10% of the bare
session, whichever is larger.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import stats

NAME = "startup"
TARGET_MS = 50.0
TARGET_FRACTION = 0.10
WARMUP = 2


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def _measure(scratch: Path, reps: int) -> dict[str, list[float]]:
    (scratch / "test_trivial.py").write_text("def test_trivial():\n    pass\n")
    # Bytecode caches as every installed package has them (the warm-up writes them): with
    # PYTHONDONTWRITEBYTECODE set, each process would compile the plugin's modules again.
    inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env = {**inherited, "AEGIS_STATE_DIR": str(scratch / "state"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin"]
    contenders = {
        "with_plugin": [*base, "-p", "pytest_aegis", "test_trivial.py"],
        "without_plugin": [*base, "test_trivial.py"],
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for index in range(WARMUP + reps):
        for name, argv in contenders.items():
            elapsed = _timed(argv, scratch, env)
            if index >= WARMUP:
                samples[name].append(elapsed)
    return samples


def run(reps: int, quick: bool) -> dict[str, Any]:
    """Run the startup suite: ``reps`` interleaved pairs after a warm-up."""
    scratch = Path(tempfile.mkdtemp(prefix="aegis-bench-startup-"))
    try:
        samples = _measure(scratch, reps)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    overheads = [a - b for a, b in zip(samples["with_plugin"], samples["without_plugin"], strict=True)]
    overhead_ms = stats.to_ms(stats.median(overheads))
    bare_ms = stats.to_ms(stats.median(samples["without_plugin"]))
    limit_ms = max(TARGET_MS, TARGET_FRACTION * bare_ms)
    return {
        "suite": NAME,
        "what": "a trivial one-test pytest session with -p pytest_aegis against the same without it "
        "(plugin autoload off, pytest-asyncio in both), fresh process each, interleaved",
        "quick": quick,
        "reps": reps,
        "results": {name: stats.summarize(values) for name, values in samples.items()},
        "overhead_ms": {
            "median_of_pairs": round(overhead_ms, stats.DIGITS),
            "p90_of_pairs": round(stats.to_ms(stats.percentile(overheads, 90)), stats.DIGITS),
        },
        "samples_ms": {
            name: [round(stats.to_ms(v), stats.DIGITS) for v in values] for name, values in samples.items()
        },
        "targets": {"overhead_ms_at_most": round(limit_ms, stats.DIGITS)},
        "meets_targets": overhead_ms <= limit_ms,
        "notes": [
            f"target: max({TARGET_MS:g} ms, {TARGET_FRACTION:.0%} of the bare session's median)",
            f"{WARMUP} discarded warm-up pairs (page cache, bytecode)",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 in both; that the installed plugin loads by itself is "
            "tested in tests/plugin/integration/test_plugin_behaviour.py",
        ],
    }
