"""The reference service's security, proved against real servers: the server it runs against turns
away wrong credentials, untrusting and certificate-less clients; a reader may not publish its
events; and the service itself refuses to start when the server refuses it.

These are the cases CI requires of this suite (``make integration`` passes
``--aegis-require=auth,tls,mtls,permissions,app-refusal``): deleting one fails the run.
"""

from __future__ import annotations

import pytest

from pytest_aegis import assert_app_refuses_to_start, assert_connection_rejected, assert_permission_denied

READER = {"reader": {"permissions": {"publish": {"deny": [">"]}, "subscribe": ["health.check"]}}}


@pytest.mark.asyncio
@pytest.mark.nats_secure
async def test_its_server_rejects_a_wrong_password_and_an_untrusting_client(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="auth", password="wrong", match="Authorization Violation"
    )
    await assert_connection_rejected(nats_secure, reason="tls", tls=None, match="certificate verify failed")


@pytest.mark.asyncio
@pytest.mark.nats_secure(mtls=True)
async def test_its_mtls_server_rejects_a_client_without_a_certificate(nats_secure, aegis_ca):
    await assert_connection_rejected(
        nats_secure,
        reason="tls",
        tls=aegis_ca.client_ssl_context(),
        match="certificate required|didn't provide a certificate",
    )


@pytest.mark.asyncio
@pytest.mark.nats_secure(users=READER)
async def test_a_reader_may_not_publish_audit_events_or_deregister_instances(aegis_app, nats_secure):
    reader = await nats_secure.connect(as_user="reader")
    try:
        await assert_permission_denied(reader, "audit.access_grant.created", "publish")
        await assert_permission_denied(reader, f"$KV.service-instances.{aegis_app.service_name}.x", "publish")
    finally:
        await reader.close()


@pytest.mark.nats_secure
def test_it_refuses_to_start_with_a_wrong_password(aegis_app_factory):
    refusal = assert_app_refuses_to_start(
        aegis_app_factory,
        reason="auth",
        match="Authorization Violation",
        env={"AEGIS_NATS_PASSWORD": "wrong"},
    )
    assert refusal.exit_code == 1


@pytest.mark.nats_secure(server_cert="untrusted")
def test_it_refuses_a_server_certificate_it_does_not_trust(aegis_app_factory):
    refusal = assert_app_refuses_to_start(aegis_app_factory, reason="tls", match="certificate verif")
    assert refusal.exit_code == 1


@pytest.mark.nats_secure(mtls=True)
def test_it_cannot_start_without_its_client_certificate_under_mtls(aegis_app_factory):
    assert_app_refuses_to_start(
        aegis_app_factory,
        reason="tls",
        within=10,
        match="didn't provide a certificate",
        env={"AEGIS_NATS_TLS_CERT": "", "AEGIS_NATS_TLS_KEY": ""},
    )
