"""Coverage of the service under test: a session measured by pytest-cov also measures the service
processes ``aegis_app`` starts (no change to the service), so lines that run only inside the
service, such as its TLS set-up, are reported as covered."""

from __future__ import annotations

import inspect
import json

import pytest
from support import run_inner

from aegis_service.adapters.nats import tls

TEST = """
    import pytest
    from pytest_aegis import assert_health_check

    @pytest.mark.asyncio
    @pytest.mark.nats_secure(mtls=True)
    async def test_the_service_answers(aegis_app, nats_client):
        await assert_health_check(nats_client, service=aegis_app.service_name)
"""


def _lines_of(function):
    source, first = inspect.getsourcelines(function)
    return set(range(first, first + len(source)))


@pytest.mark.aegis_backends("local", reason="the service runs as a local process only there")
def test_lines_that_run_only_in_the_service_are_covered(inner):
    inner.makepyfile(test_inner=TEST)
    report = inner.path / "coverage.json"
    result = run_inner(inner, "--cov=aegis_service", f"--cov-report=json:{report}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["aegis: coverage of the service under test: on*"])
    files = json.loads(report.read_text())["files"]
    measured = next(data for path, data in files.items() if path.endswith("adapters/nats/tls.py"))
    # build_ssl_context (CA bundle and client certificate under mTLS) runs only in the service process.
    executed = set(measured["executed_lines"]) & _lines_of(tls.build_ssl_context)
    assert len(executed) >= 10, sorted(executed)


def test_an_unmeasured_session_says_nothing_about_coverage(inner):
    inner.makepyfile(test_inner="def test_nothing():\n    pass\n")
    result = run_inner(inner)
    assert "coverage of the service under test" not in result.stdout.str()
