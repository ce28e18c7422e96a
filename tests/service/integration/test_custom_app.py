"""aegis_app is not tied to the reference service: point it at any command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_aegis import AppSpec, assert_health_check

SERVICE = Path(__file__).parents[3] / "fixtures" / "minimal_service.py"


@pytest.fixture(scope="session")
def aegis_app_spec():
    return AppSpec(
        command=(sys.executable, str(SERVICE)),
        health_subject="status.ping",
        ready_pattern=None,  # no ready line: readiness is the health check answering
        env_map={
            "MYAPP_NATS": "AEGIS_NATS_URL",
            "MYAPP_USER": "AEGIS_NATS_USER",
            "MYAPP_PASSWORD": "AEGIS_NATS_PASSWORD",
            "MYAPP_CA": "AEGIS_NATS_TLS_CA",
            "MYAPP_NAME": "AEGIS_SERVICE_NAME",
            "MYAPP_HEALTH": "AEGIS_HEALTH_SUBJECT",
        },
    )


@pytest.mark.asyncio
@pytest.mark.nats_secure
async def test_own_service_over_tls_and_auth(aegis_app, nats_client):
    assert aegis_app.env["MYAPP_NATS"].startswith("tls://")
    await assert_health_check(nats_client, "status.ping", service=aegis_app.service_name)


def test_own_service_that_never_gets_healthy_fails_with_its_log(aegis_app_factory):
    from pytest_aegis import ServerStartError

    with pytest.raises(
        ServerStartError, match=r"(?s)exited with code 1 before answering.*invalid hostname in connect url"
    ):
        aegis_app_factory(env={"MYAPP_NATS": ""})


def test_settings_build_a_spec_for_a_custom_command():
    spec = AppSpec.from_settings(
        "python -m myapp --port 0", "myapp.health", "APP_URL=AEGIS_NATS_URL,APP_CA=AEGIS_NATS_TLS_CA"
    )
    assert spec.command == (sys.executable, "-m", "myapp", "--port", "0")  # pytest's interpreter
    assert spec.health_subject == "myapp.health" and spec.ready_pattern is None
    assert spec.env_map == {"APP_URL": "AEGIS_NATS_URL", "APP_CA": "AEGIS_NATS_TLS_CA"}
    with pytest.raises(ValueError, match="expected NAME=AEGIS_VARIABLE pairs, got 'oops'"):
        AppSpec.from_settings(None, None, "oops")
