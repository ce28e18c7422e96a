"""``assert_app_refuses_to_start`` against the reference service and real servers: each refusal is
classified by the service's log and the server's, and the helper fails, saying what happened,
when the service starts or fails for another reason."""

from __future__ import annotations

import pytest

from pytest_aegis import AppRefusal, assert_app_refuses_to_start

#: Bounds the wait for a service that never gets healthy (the refusal is usually seen at once).
WITHIN = 10.0


@pytest.mark.nats_secure(auth="userpass")
def test_a_wrong_password_is_an_auth_refusal(aegis_app_factory):
    refusal = assert_app_refuses_to_start(
        aegis_app_factory,
        reason="auth",
        match="Authorization Violation",
        env={"AEGIS_NATS_PASSWORD": "wrong"},
    )
    assert isinstance(refusal, AppRefusal)
    assert refusal.reason == "auth" and refusal.exit_code == 1
    assert "startup failed" in refusal.app_log


@pytest.mark.nats_secure(auth="jwt")
def test_foreign_jwt_creds_are_an_auth_refusal(aegis_app_factory, nats_secure):
    creds = nats_secure.issue_user_creds("mallory", foreign=True)
    refusal = assert_app_refuses_to_start(
        aegis_app_factory, reason="auth", env={"AEGIS_NATS_CREDS_FILE": str(creds)}
    )
    assert any("authentication error" in line.lower() for line in refusal.server_lines), refusal.server_lines


@pytest.mark.nats_secure(server_cert="untrusted")
def test_an_untrusted_server_certificate_is_a_tls_refusal(aegis_app_factory):
    refusal = assert_app_refuses_to_start(aegis_app_factory, reason="tls", match="certificate verif")
    assert refusal.exit_code == 1


@pytest.mark.nats_secure(mtls=True)
def test_a_missing_client_certificate_under_mtls_is_a_tls_refusal(aegis_app_factory):
    # The service sees only a reset; the server's log says why.
    refusal = assert_app_refuses_to_start(
        aegis_app_factory,
        reason="tls",
        within=WITHIN,
        env={"AEGIS_NATS_TLS_CERT": "", "AEGIS_NATS_TLS_KEY": ""},
    )
    assert any("didn't provide a certificate" in line for line in refusal.server_lines), refusal.server_lines


@pytest.mark.nats_secure(mtls=True)
def test_a_foreign_client_certificate_is_a_tls_refusal(aegis_app_factory, aegis_ca):
    foreign = aegis_ca.write_leaf(aegis_ca.untrusted_client_cert, "foreign-client")
    refusal = assert_app_refuses_to_start(
        aegis_app_factory,
        reason="tls",
        within=WITHIN,
        match="unknown authority|unknown ca|bad certificate",
        env={"AEGIS_NATS_TLS_CERT": str(foreign.cert), "AEGIS_NATS_TLS_KEY": str(foreign.key)},
    )
    assert refusal.reason == "tls"


@pytest.mark.nats_secure(permissions={"subscribe": {"deny": ["health.check", "health.check.>"]}})
def test_a_denied_health_subscription_is_a_permissions_refusal(aegis_app_factory):
    refusal = assert_app_refuses_to_start(
        aegis_app_factory, reason="permissions", within=WITHIN, match="Subscription Violation"
    )
    assert refusal.exit_code == 1


@pytest.mark.nats_secure
def test_it_fails_saying_so_when_the_service_starts_fine(aegis_app_factory):
    with pytest.raises(AssertionError, match=r"but app\[.*\] started and answered its health check"):
        assert_app_refuses_to_start(aegis_app_factory, reason="auth")


@pytest.mark.nats_secure(auth="userpass")
def test_it_fails_on_the_wrong_reason(aegis_app_factory):
    with pytest.raises(AssertionError, match=r"for reason 'tls'.*refused it for reason 'auth'"):
        assert_app_refuses_to_start(aegis_app_factory, reason="tls", env={"AEGIS_NATS_PASSWORD": "wrong"})


@pytest.mark.nats_secure
def test_it_fails_when_the_service_fails_for_another_reason(aegis_app_factory):
    # A configuration error: exit 2 before any connection, no refusal anywhere.
    with pytest.raises(AssertionError, match="failed for another reason"):
        assert_app_refuses_to_start(aegis_app_factory, reason="auth", env={"AEGIS_HEARTBEAT_INTERVAL": "-1"})


def test_a_bad_reason_is_a_value_error(aegis_app_factory):
    with pytest.raises(ValueError, match="reason must be one of auth, tls, permissions"):
        assert_app_refuses_to_start(aegis_app_factory, reason="kerberos")  # type: ignore[arg-type]
