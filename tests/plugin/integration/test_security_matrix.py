"""The security matrix against real nats-servers: every auth mode and TLS
variant accepts the right client and rejects each wrong one *for the right
reason*.  Each negative test names the specific rejection it expects."""

from __future__ import annotations

import asyncio
import datetime as dt

import nats
import pytest

from pytest_aegis import assert_connection_rejected, assert_permission_denied, assert_permitted, nats_auth
from pytest_aegis.assertions.security import classify

pytestmark = pytest.mark.asyncio

PERMS = {
    "publish": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.secret.>"]},
    "subscribe": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.audit.>"]},
}
USERS = {"reader": {"permissions": {"publish": {"deny": [">"]}, "subscribe": ["orders.>"]}}}


async def roundtrip(nc: nats.aio.client.Client, subject: str = "orders.created") -> None:
    sub = await nc.subscribe(subject)
    await nc.publish(subject, b"ping")
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"ping"
    await sub.unsubscribe()


# -- positive cases: every mode accepts its valid client ------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"auth": "none", "tls": False},
        {"auth": "userpass", "tls": False},
        {"auth": "token", "tls": False},
        {"auth": "nkey", "tls": False},
        {"auth": "jwt", "tls": False},
        {"auth": "userpass", "tls": True},
        {"auth": "token", "tls": True},
        {"auth": "nkey", "tls": True},
        {"auth": "jwt", "tls": True},
        {"auth": "userpass", "tls": True, "mtls": True},
        {"auth": "none", "tls": True, "mtls": True},
    ],
    ids=lambda spec: "-".join(f"{k}={v}" for k, v in spec.items()),
)
async def test_valid_client_is_accepted_with_jetstream(nats_server_factory, spec):
    server = nats_server_factory(**spec)
    nc = await server.connect()
    try:
        await roundtrip(nc)
        js = nc.jetstream()
        info = await js.add_stream(name="ORDERS", subjects=["orders.>"])
        assert info.config.name == "ORDERS"
        if spec.get("tls"):
            assert nc.connected_url.scheme == "tls"
    finally:
        await nc.close()


@pytest.mark.nats_secure
async def test_default_marker_means_tls_userpass_jetstream(nats_secure, nats_client):
    assert nats_secure.spec.tls and nats_secure.spec.auth == "userpass" and nats_secure.spec.jetstream
    assert nats_secure.url.startswith("tls://")
    await roundtrip(nats_client)
    await assert_connection_rejected(nats_secure, reason="auth", password="wrong")


# -- user/password ------------------------------------------------------------------


@pytest.mark.nats_secure(auth="userpass", tls=False)
async def test_userpass_no_credentials(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="auth", user=None, password=None, match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="userpass", tls=False)
async def test_userpass_wrong_password(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="auth", password="wrong", match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="userpass", tls=False)
async def test_userpass_unknown_user(nats_secure):
    password = nats_secure.credentials["password"]
    await assert_connection_rejected(
        nats_secure, reason="auth", user="mallory", password=password, match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_userpass_one_megabyte_password_is_rejected_and_server_survives(nats_secure):
    # The server answers "-ERR 'maximum control line exceeded'" and closes; when it
    # closes with our megabyte still unread, TCP resets and the -ERR may be lost.
    error = await assert_connection_rejected(
        nats_secure, reason=("protocol", "reset"), password="x" * 1024 * 1024
    )
    if classify(error) == "protocol":
        assert "maximum control line exceeded" in str(error)
    assert nats_secure.is_running
    nc = await nats_secure.connect()
    await roundtrip(nc)
    await nc.close()


@pytest.mark.nats_secure(auth="userpass", tls=True)
@pytest.mark.parametrize("field", ["user", "password"])
async def test_userpass_control_characters_are_rejected_and_server_survives(nats_secure, field):
    hostile = "aegis\r\nPUB orders.created 4\r\nevil\r\n\x00\x1b[2J"
    await assert_connection_rejected(
        nats_secure, reason="auth", match="Authorization Violation", **{field: hostile}
    )
    assert nats_secure.is_running
    nc = await nats_secure.connect()
    await roundtrip(nc)
    await nc.close()


# -- token ------------------------------------------------------------------------------


@pytest.mark.nats_secure(auth="token", tls=True)
async def test_token_wrong(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="auth", token="not-the-token", match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="token", tls=True)
async def test_token_missing(nats_secure):
    await assert_connection_rejected(nats_secure, reason="auth", token=None, match="Authorization Violation")


@pytest.mark.nats_secure(auth="token", tls=True)
async def test_token_server_rejects_user_and_password(nats_secure):
    await assert_connection_rejected(
        nats_secure,
        reason="auth",
        token=None,
        user="aegis",
        password=nats_secure.credentials["token"],
        match="Authorization Violation",
    )


# -- nkey -------------------------------------------------------------------------------


@pytest.mark.nats_secure(auth="nkey", tls=True)
async def test_nkey_unknown_key(nats_secure, tmp_path):
    stranger = tmp_path / "stranger.nk"
    stranger.write_text(nats_auth.new_nkey_user().seed)
    await assert_connection_rejected(
        nats_secure, reason="auth", nkeys_seed=str(stranger), match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="nkey", tls=True)
async def test_nkey_missing(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="auth", nkeys_seed=None, match="Authorization Violation"
    )


# -- JWT (operator mode) ------------------------------------------------------------------


@pytest.mark.nats_secure(auth="jwt", tls=True)
async def test_jwt_user_signed_by_foreign_account(nats_secure):
    creds = nats_secure.issue_user_creds("foreigner", foreign=True)
    await assert_connection_rejected(
        nats_secure, reason="auth", user_credentials=str(creds), match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="jwt", tls=True)
async def test_jwt_expired_user(nats_secure):
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    creds = nats_secure.issue_user_creds("expired", expires_at=yesterday)
    await assert_connection_rejected(
        nats_secure, reason="auth", user_credentials=str(creds), match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="jwt", tls=True)
async def test_jwt_missing_credentials(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="auth", user_credentials=None, match="Authorization Violation"
    )


@pytest.mark.nats_secure(auth="jwt", tls=True)
async def test_jwt_of_one_user_with_the_seed_of_another(nats_secure, tmp_path):
    alice = nats_secure.material.operator.issue_user("alice")
    mallory = nats_auth.new_nkey_user()
    forged = nats_auth.UserCreds(name="alice", jwt=alice.jwt, seed=mallory.seed, public_key=alice.public_key)
    path = forged.write(tmp_path / "forged.creds")
    await assert_connection_rejected(
        nats_secure, reason="auth", user_credentials=str(path), match="Authorization Violation"
    )


# -- TLS ---------------------------------------------------------------------------------


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_plaintext_client_against_tls_server(nats_secure):
    error = await assert_connection_rejected(nats_secure, reason="tls", tls=False)
    assert "tls_required=True" in str(error)
    assert "Authorization" not in str(error)


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_client_without_the_session_ca(nats_secure):
    await assert_connection_rejected(nats_secure, reason="tls", tls=None, match="certificate verify failed")


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_client_trusting_another_ca(nats_secure, aegis_ca):
    await assert_connection_rejected(
        nats_secure,
        reason="tls",
        tls=aegis_ca.untrusting_ssl_context(),
        match="unable to get local issuer certificate",
    )


@pytest.mark.nats_secure(server_cert="expired")
async def test_server_cert_expired(nats_secure):
    await assert_connection_rejected(nats_secure, reason="tls", match="certificate has expired")


@pytest.mark.nats_secure(server_cert="not_yet_valid")
async def test_server_cert_not_yet_valid(nats_secure):
    await assert_connection_rejected(nats_secure, reason="tls", match="certificate is not yet valid")


@pytest.mark.nats_secure(server_cert="wrong_host")
async def test_server_cert_for_the_wrong_host(nats_secure):
    await assert_connection_rejected(nats_secure, reason="tls", match="mismatch")


@pytest.mark.nats_secure(server_cert="untrusted")
async def test_server_cert_from_an_untrusted_ca(nats_secure):
    await assert_connection_rejected(
        nats_secure, reason="tls", match="unable to get local issuer certificate"
    )


@pytest.mark.nats_secure(mtls=True)
async def test_mtls_without_client_cert(nats_secure, aegis_ca):
    await assert_connection_rejected(
        nats_secure,
        reason="tls",
        tls=aegis_ca.client_ssl_context(),
        match="certificate required|didn't provide a certificate",
    )


@pytest.mark.nats_secure(mtls=True)
async def test_mtls_client_cert_from_another_ca(nats_secure, aegis_ca):
    ctx = aegis_ca.client_ssl_context(aegis_ca.untrusted_client_cert)
    await assert_connection_rejected(
        nats_secure, reason="tls", tls=ctx, match="unknown ca|signed by unknown authority"
    )


@pytest.mark.nats_secure(mtls=True)
async def test_mtls_expired_client_cert(nats_secure, aegis_ca):
    ctx = aegis_ca.client_ssl_context(aegis_ca.expired_client_cert)
    await assert_connection_rejected(
        nats_secure, reason="tls", tls=ctx, match="certificate expired|certificate has expired"
    )


@pytest.mark.nats_secure(mtls=True)
async def test_rejections_at_once_on_a_shared_server_each_get_their_own_reason(nats_secure, aegis_ca):
    """Two clients rejected at the same moment: the server logs both handshake errors, and each
    attempt must be explained by the line about its own connection, not by the other's (a late
    line of one test once explained the next test's rejection on the shared server)."""
    foreign = aegis_ca.client_ssl_context(aegis_ca.untrusted_client_cert)
    expired = aegis_ca.client_ssl_context(aegis_ca.expired_client_cert)
    for _ in range(3):
        await asyncio.gather(
            assert_connection_rejected(
                nats_secure, reason="tls", tls=foreign, match="unknown ca|signed by unknown authority"
            ),
            assert_connection_rejected(
                nats_secure, reason="tls", tls=expired, match="certificate expired|certificate has expired"
            ),
        )


# -- permissions -----------------------------------------------------------------------------


@pytest.mark.nats_secure(permissions=PERMS)
async def test_publish_to_denied_subject(nats_client):
    error = await assert_permission_denied(nats_client, "orders.secret.keys", "publish")
    assert "publish" in str(error).lower()
    await assert_permitted(nats_client, "orders.created", "publish")


@pytest.mark.nats_secure(permissions=PERMS)
async def test_publish_outside_allow_list(nats_client):
    await assert_permission_denied(nats_client, "billing.charge", "publish")


@pytest.mark.nats_secure(permissions=PERMS)
async def test_a_denied_subject_with_capitals_is_recognised(nats_client):
    # nats-py lower-cases the whole server error, the subject included ("$KV..." -> "$kv...").
    await assert_permission_denied(nats_client, "$KV.Orders.Secret", "publish")


@pytest.mark.nats_secure(permissions=PERMS)
async def test_subscribe_to_denied_subject(nats_client):
    error = await assert_permission_denied(nats_client, "orders.audit.log", "subscribe")
    assert "subscription" in str(error).lower()
    await assert_permitted(nats_client, "orders.created", "subscribe")


@pytest.mark.nats_secure(permissions=PERMS, users=USERS)
async def test_extra_user_has_its_own_permissions(nats_secure):
    reader = await nats_secure.connect(as_user="reader")
    try:
        await assert_permission_denied(reader, "orders.created", "publish")
        await assert_permitted(reader, "orders.created", "subscribe")
        await assert_permission_denied(reader, "billing.charge", "subscribe")
    finally:
        await reader.close()


@pytest.mark.nats_secure(auth="jwt", permissions=PERMS)
async def test_jwt_user_permissions_are_enforced(nats_client):
    await assert_permission_denied(nats_client, "orders.secret.keys", "publish")
    await assert_permission_denied(nats_client, "orders.audit.log", "subscribe")
    await assert_permitted(nats_client, "orders.created", "publish")


@pytest.mark.nats_secure(auth="nkey", permissions=PERMS)
async def test_nkey_user_permissions_are_enforced(nats_client):
    await assert_permission_denied(nats_client, "orders.secret.keys", "publish")
    await assert_permission_denied(nats_client, "orders.audit.log", "subscribe")


# -- the helpers themselves cannot pass for the wrong reason -------------------------------------


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_rejection_helper_fails_when_the_connection_succeeds(nats_secure):
    with pytest.raises(AssertionError, match="but it was accepted"):
        await assert_connection_rejected(nats_secure, reason="auth")


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_rejection_helper_fails_on_the_wrong_reason(nats_secure):
    with pytest.raises(AssertionError, match=r"for reason 'tls' .*but it failed for reason 'auth'"):
        await assert_connection_rejected(nats_secure, reason="tls", password="wrong")


@pytest.mark.nats_secure(auth="userpass", tls=True)
async def test_rejection_helper_fails_when_the_message_does_not_match(nats_secure):
    with pytest.raises(AssertionError, match="does not match 'certificate has expired'"):
        await assert_connection_rejected(nats_secure, reason="tls", tls=None, match="certificate has expired")


@pytest.mark.nats_secure(permissions=PERMS)
async def test_permission_helper_fails_when_the_subject_is_allowed(nats_client):
    with pytest.raises(AssertionError, match="but it was allowed"):
        await assert_permission_denied(nats_client, "orders.created", "publish", timeout=0.3)
