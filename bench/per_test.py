"""Suite ``per_test``: what the plugin costs each test that uses it, against the floor.

Two sessions of the same ``TESTS`` tests, each one a round trip on its own nats-py client to one
nats-server with JetStream, run in a fresh process each, interleaved (A B A B ...), with the
automatic loading of installed plugins off and pytest-asyncio loaded in both:

``plugin``
    the tests ask for ``nats_client`` (``-p pytest_aegis``): the plugin's session server, a
    client per test, its per-test JetStream isolation, matrix and report bookkeeping.
``hand_written``
    a ``conftest.py`` as a user writes one without the plugin: a session fixture that starts
    ``nats-server -js`` on a port of its own choosing (ready at its "Server is ready" line) and a
    function fixture that connects a client and closes it after the test.

The figure is the ratio of the whole sessions' medians (``plugin / hand_written``), with the
median of the paired ratios beside it; the target is at most ``TARGET_RATIO``.
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

NAME = "per_test"
TESTS = 200
QUICK_TESTS = 20
TARGET_RATIO = 1.1
WARMUP = 1

TEST_BODY = """
import pytest


@pytest.mark.asyncio
@pytest.mark.parametrize("n", range({tests}))
async def test_round_trip({client}, n):
    await {client}.flush()
"""

HAND_WRITTEN_CONFTEST = """
import re
import shutil
import subprocess
import tempfile

import nats
import pytest
import pytest_asyncio


@pytest.fixture(scope="session")
def nats_url():
    store = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [shutil.which("nats-server"), "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store],
        stderr=subprocess.PIPE, text=True,
    )
    port = None
    for line in proc.stderr:
        found = re.search(r"Listening for client connections on 127.0.0.1:(\\d+)", line)
        port = found.group(1) if found else port
        if "Server is ready" in line:
            break
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait()
    proc.stderr.close()
    shutil.rmtree(store)


@pytest_asyncio.fixture
async def nc(nats_url):
    client = await nats.connect(nats_url)
    yield client
    await client.close()
"""


def _write(scratch: Path, tests: int) -> dict[str, Path]:
    plugin, hand = scratch / "plugin", scratch / "hand_written"
    for directory, client in ((plugin, "nats_client"), (hand, "nc")):
        directory.mkdir()
        (directory / "test_round_trips.py").write_text(TEST_BODY.format(tests=tests, client=client))
        (directory / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        )
    (hand / "conftest.py").write_text(HAND_WRITTEN_CONFTEST)
    return {"plugin": plugin, "hand_written": hand}


def _timed(argv: list[str], cwd: Path, env: dict[str, str], tests: int) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or f"{tests} passed" not in proc.stdout:
        raise RuntimeError(
            f"{' '.join(argv)} in {cwd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return elapsed


def run(reps: int, quick: bool) -> dict[str, Any]:
    """``reps`` interleaved pairs of sessions (``quick``: ``QUICK_TESTS`` tests, 2 pairs)."""
    tests = QUICK_TESTS if quick else TESTS
    reps = 2 if quick else reps
    scratch = Path(tempfile.mkdtemp(prefix="aegis-bench-per-test-"))
    inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env = {**inherited, "AEGIS_STATE_DIR": str(scratch / "state"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's nats-server
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin"]
    argv = {"plugin": [*base, "-p", "pytest_aegis"], "hand_written": base}
    samples: dict[str, list[float]] = {name: [] for name in argv}
    try:
        where = _write(scratch, tests)
        for index in range(WARMUP + reps):
            for name in argv:
                elapsed = _timed(argv[name], where[name], env, tests)
                if index >= WARMUP:
                    samples[name].append(elapsed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = stats.ratio(stats.median(samples["plugin"]), stats.median(samples["hand_written"]))
    per_test_ms = stats.to_ms(
        (stats.median(samples["plugin"]) - stats.median(samples["hand_written"])) / tests
    )
    return {
        "suite": NAME,
        "what": f"{tests} tests, each a flush on its own client to one nats-server -js: the plugin's "
        "nats_client against a hand-written session server fixture and client fixture; a fresh "
        "process per session, interleaved",
        "quick": quick,
        "reps": reps,
        "tests": tests,
        "results": {name: stats.summarize(values) for name, values in samples.items()},
        "ratio": {
            "of_medians": ratio,
            "median_of_pairs": stats.paired_ratio_median(samples["plugin"], samples["hand_written"]),
        },
        "extra_ms_per_test": round(per_test_ms, stats.DIGITS),
        "targets": {"ratio_at_most": TARGET_RATIO},
        "meets_targets": ratio <= TARGET_RATIO,
        "notes": [
            f"{WARMUP} discarded warm-up pair (page cache, bytecode)",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 in both, pytest-asyncio loaded in both",
        ],
    }
