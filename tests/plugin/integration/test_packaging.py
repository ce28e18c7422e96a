"""The plugin ships alone: its wheel holds the plugin only, PostgreSQL is an extra, and a session
without psycopg, FastAPI or the reference service loads the plugin, runs NATS tests, and fails a
PostgreSQL fixture or ``aegis_app`` with a message saying what to install or configure."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _build_wheel(out: Path) -> Path:
    # Offline: the venv's own setuptools (the dev extra), no build isolation, no index.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("pytest_aegis-*.whl")
    return wheel


def test_the_wheel_holds_the_plugin_only_and_postgres_is_an_extra(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_name = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"pytest_aegis"}, names
    assert not [name for name in names if "/bench/" in name or name.startswith("aegis_service")]
    requires = metadata.get_all("Requires-Dist") or []
    unconditional = [req for req in requires if "extra ==" not in req]
    assert not [req for req in unconditional if req.startswith(("psycopg", "fastapi", "aegis-service"))]
    assert any(req.startswith("psycopg") and 'extra == "postgres"' in req for req in requires), requires
    assert "postgres" in (metadata.get_all("Provides-Extra") or [])


BLOCKED = ("psycopg", "psycopg_pool", "fastapi", "aegis_service")


def test_without_psycopg_or_the_reference_service_nats_runs_and_the_rest_says_what_to_install(tmp_path):
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent("""
            import pytest

            @pytest.mark.asyncio
            async def test_nats(nats_client):
                await nats_client.publish("x", b"y")

            def test_postgres(postgres_db):
                pass

            def test_app(aegis_app):
                pass
        """)
    )
    # Each blocked module behaves as not installed (None in sys.modules: import fails, find_spec
    # says it is missing), from before pytest imports anything.
    runner = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None\n"
        "import pytest\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", runner, "-p", "pytest_asyncio.plugin", "-p", "pytest_aegis", "-p",
         "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function", "-rE", "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        # Only the plugins named: pytest-postgresql, installed here for the benchmarks, imports psycopg.
        env={**_env(), "AEGIS_STATE_DIR": str(tmp_path / "state"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "1 passed, 2 errors" in out, out
    assert "pip install 'pytest-aegis[postgres]'" in out, out
    assert "no service under test is configured" in out and "aegis_app_command" in out, out


def _env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
