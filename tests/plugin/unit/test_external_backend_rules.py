"""The external backend's rules without servers: settings validation, redaction, the skip rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_aegis.backends.external.backend import ExternalBackend
from pytest_aegis.backends.external.nats import Cleanup, ServerFacts
from pytest_aegis.backends.external.postgres import ExternalPostgres, redact_dsn
from pytest_aegis.backends.external.target import NatsTarget, nats_target, redact_url
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable, ExternalServerError
from pytest_aegis.natsd.spec import NatsSpec
from pytest_aegis.session import SessionState


def config(**settings: object) -> AegisConfig:
    return AegisConfig(backend="external", **settings)  # type: ignore[arg-type]


def test_urls_and_dsns_are_printed_without_their_secrets() -> None:
    assert redact_url("tls://alice:s3cret@nats.example:4222") == "tls://alice:***@nats.example:4222"
    assert redact_url("nats://tok3n@10.0.0.1:4222") == "nats://***@10.0.0.1:4222"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    shown = redact_dsn("postgresql://app:s3cret@db.internal:6432/shared?sslmode=require")
    assert shown == "postgresql://app@db.internal:6432/shared"
    assert "s3cret" not in redact_dsn("host=db user=app password=s3cret dbname=x")


def test_credentials_in_the_url_are_used_and_dropped_from_it() -> None:
    target = nats_target(config(external_nats_url="nats://alice:s3cret@127.0.0.1:4333"))
    assert target.url == "nats://127.0.0.1:4333"
    assert target.identity.connect_kwargs == {"user": "alice", "password": "s3cret"}
    assert target.auth == "userpass"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs the NATS server's URL: set --aegis-external-nats-url / AEGIS_EXTERNAL_NATS_URL"),
        ({"external_nats_url": "http://x:1"}, "is not a NATS URL; expected nats://host:port or tls://"),
        (
            {"external_nats_url": "nats://h:1", "external_nats_user": "u"},
            "a NATS user needs a password and vice versa; set --aegis-external-nats-password",
        ),
        (
            {"external_nats_url": "nats://h:1", "external_nats_token": "t", "external_nats_creds": Path("x")},
            "give one kind of NATS credentials, not token and creds",
        ),
        (
            {"external_nats_url": "tls://h:1", "external_nats_ca": Path("/nonexistent/ca.pem")},
            "--aegis-external-nats-ca / ini aegis_external_nats_ca / env AEGIS_EXTERNAL_NATS_CA: the CA "
            "bundle /nonexistent/ca.pem does not exist",
        ),
    ],
    ids=["no-url", "wrong-scheme", "user-without-password", "two-kinds", "missing-ca"],
)
def test_bad_settings_name_the_setting(settings: dict[str, object], message: str) -> None:
    with pytest.raises(BackendUnavailable, match=re.escape(message)):
        nats_target(config(**settings))


def test_the_skip_rule_runs_only_specs_the_server_offers(tmp_path: Path) -> None:
    backend = ExternalBackend(
        config(external_nats_url="tls://127.0.0.1:4222", external_nats_user="u", external_nats_password="p"),
        SessionState(tmp_path),
    )
    backend.__dict__["_check"] = ServerFacts("2.11.0", "k8s-nats-0", True, True, frozenset())
    assert backend.offer.label == "tls+userpass+js"
    assert backend.cannot_serve(NatsSpec()) is None
    assert backend.cannot_serve(NatsSpec(jetstream=False)) is None
    reason = backend.cannot_serve(NatsSpec(auth="token"))
    assert reason is not None and "nats_secure(tls+token+js) needs a server the harness configures" in reason
    assert "uses the server at tls://127.0.0.1:4222 (tls+userpass+js), which lacks: auth='token'" in reason
    for spec in (NatsSpec(mtls=True), NatsSpec(server_cert="expired"), NatsSpec.plain()):
        assert backend.cannot_serve(spec) is not None, spec.label


def test_an_external_postgres_keeps_the_dsn_parameters_and_refuses_lifecycle() -> None:
    server = ExternalPostgres(
        "postgresql://app:s3cret@db.internal:6432/shared?sslmode=require", name="pg", version="16.4"
    )
    assert "dbname=test_1" in server.dsn_for("test_1") and "sslmode=require" in server.dsn_for("test_1")
    assert "dbname=shared" in server.dsn
    assert server.url == "postgresql://app@db.internal:6432/shared"
    assert getattr(server, "shared", False)
    with pytest.raises(
        ExternalServerError, match=re.escape("PostgreSQL server at postgresql://app@db.internal:6432/shared")
    ):
        server.restart()
    server.remove()  # never stops the server: a no-op


# -- a cluster: a comma-separated list of URLs ------------------------------------------


def target_of(url: str) -> NatsTarget:
    return nats_target(AegisConfig(backend="external", external_nats_url=url))


def test_a_list_is_every_url_in_order_without_credentials_which_count_once_for_all() -> None:
    target = target_of(" tls://ci:s3cret@10.0.0.1:4222, tls://10.0.0.2 ,tls://[::1]:4224,")
    assert target.urls == ("tls://10.0.0.1:4222", "tls://10.0.0.2:4222", "tls://[::1]:4224")
    assert (target.url, target.host, target.port) == ("tls://10.0.0.1:4222", "10.0.0.1", 4222)
    assert target.tls
    assert target.where == "the cluster of 3 at tls://10.0.0.1:4222, tls://10.0.0.2:4222, tls://[::1]:4224"
    assert target.identity.connect_kwargs == {"user": "ci", "password": "s3cret"}
    assert target_of("nats://h:1").where == "the server at nats://h:1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tls://a:1,tls://a:1", "entry 2 of 2, 'tls://a:1', is listed twice"),
        ("tls://a:0", "'tls://a:0' has an invalid port"),
        ("tls://u:p@a:1,tls://v:q@b:2", "the URLs carry different credentials; give them once"),
        (" , ", "needs the NATS server's URL: set --aegis-external-nats-url / AEGIS_EXTERNAL_NATS_URL"),
    ],
    ids=["twice", "port-0", "two-credentials", "only-commas"],
)
def test_a_bad_list_names_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(BackendMisconfigured, match=re.escape(message)):
        target_of(url)


def test_streams_the_cleanup_could_not_delete_are_one_line_naming_each(tmp_path: Path) -> None:
    backend = ExternalBackend(
        AegisConfig(backend="external", external_nats_url="tls://a:1,tls://b:2"), SessionState(tmp_path)
    )
    assert backend.notices() == []
    backend._cleanup = Cleanup(deleted=["MINE"], left=["stream ORDERS (APIError: x)", "KV bucket cfg (y)"])
    assert backend.notices() == [
        "external NATS: could not remove what this session made: stream ORDERS (APIError: x), "
        "KV bucket cfg (y) left behind"
    ]
