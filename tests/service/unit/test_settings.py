"""Settings parsing: defaults, every variable, and the one-line error messages (exit code 2)."""

from __future__ import annotations

import os
from pathlib import Path

import nkeys
import pytest
import trustme

from aegis_service import __main__ as entry
from aegis_service import __version__
from aegis_service.adapters.nats.kv import ttl_header_value
from aegis_service.env_values import parse_http_bind
from aegis_service.settings import Settings, SettingsError, load_settings


def load(**env: str) -> Settings:
    return load_settings(env)


def error_for(**env: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert "\n" not in message, "errors must be a single line"
    assert "Traceback" not in message
    return message


# -- defaults and happy paths ------------------------------------------------------------------------


def test_defaults() -> None:
    s = load()
    assert s.nats_url == "nats://127.0.0.1:4222"
    assert s.servers == ["nats://127.0.0.1:4222"]
    assert s.service_name == "aegis-service"
    assert s.service_version == __version__
    assert len(s.instance_id) == 32 and int(s.instance_id, 16) >= 0
    assert s.health_subject == "health.check"
    assert s.registration_ttl == 30.0
    assert s.heartbeat_interval == 10.0
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.connect_timeout == 30.0
    assert s.log_level == "INFO"
    assert s.auth_mode == "none"
    assert s.tls_enabled is False
    assert s.instance_key == f"aegis-service.{s.instance_id}"


def test_generated_instance_ids_are_unique() -> None:
    assert load().instance_id != load().instance_id


def test_every_plain_variable_is_read() -> None:
    s = load(
        AEGIS_NATS_URL="tls://nats.example:4443, tls://nats2.example:4443",
        AEGIS_SERVICE_NAME="orders_v2",
        AEGIS_SERVICE_VERSION="2.0.0-rc.1",
        AEGIS_INSTANCE_ID="pod-7",
        AEGIS_HEALTH_SUBJECT="svc.orders.health",
        AEGIS_REGISTRATION_TTL="1.5",
        AEGIS_HEARTBEAT_INTERVAL="0.5",
        AEGIS_HTTP_BIND="0.0.0.0:0",
        AEGIS_CONNECT_TIMEOUT="2.5",
        AEGIS_NATS_REQUEST_TIMEOUT="0.75",
        AEGIS_BREAKER_FAILURE_THRESHOLD="3",
        AEGIS_BREAKER_RESET_TIMEOUT="1",
        AEGIS_LOG_LEVEL="debug",
        AEGIS_NATS_TLS_HOSTNAME="nats.internal",
    )
    assert s.servers == ["tls://nats.example:4443", "tls://nats2.example:4443"]
    assert s.tls_enabled is True
    assert (s.service_name, s.service_version, s.instance_id) == ("orders_v2", "2.0.0-rc.1", "pod-7")
    assert s.instance_key == "orders_v2.pod-7"
    assert s.health_subject == "svc.orders.health"
    assert (s.registration_ttl, s.heartbeat_interval) == (1.5, 0.5)
    assert (s.http_host, s.http_port) == ("0.0.0.0", 0)
    assert (s.connect_timeout, s.request_timeout) == (2.5, 0.75)
    assert (s.breaker_failure_threshold, s.breaker_reset_timeout) == (3, 1.0)
    assert s.log_level == "DEBUG"
    assert s.tls_hostname == "nats.internal"


def test_pings_and_replicas() -> None:
    s = load(
        AEGIS_NATS_PING_INTERVAL="0.5", AEGIS_NATS_MAX_OUTSTANDING_PINGS="3", AEGIS_JETSTREAM_REPLICAS="3"
    )
    assert (s.ping_interval, s.max_outstanding_pings, s.jetstream_replicas) == (0.5, 3, 3)
    assert (load().ping_interval, load().max_outstanding_pings, load().jetstream_replicas) == (10.0, 2, 1)
    assert "AEGIS_JETSTREAM_REPLICAS: must be 1 to 5 (JetStream's replica limit), got '6'" in error_for(
        AEGIS_JETSTREAM_REPLICAS="6"
    )
    assert "AEGIS_NATS_PING_INTERVAL" in error_for(AEGIS_NATS_PING_INTERVAL="0")


def test_empty_values_count_as_unset_and_other_variables_are_ignored() -> None:
    s = load(AEGIS_NATS_TOKEN="", AEGIS_SERVICE_NAME="  ", PATH="/bin", AEGIS_SOMETHING_ELSE="x")
    assert s.auth_mode == "none"
    assert s.service_name == "aegis-service"


def test_user_password_mode_keeps_the_secret_out_of_repr() -> None:
    s = load(AEGIS_NATS_USER="svc", AEGIS_NATS_PASSWORD="hunter2")
    assert s.auth_mode == "user_password"
    assert s.nats_password is not None and s.nats_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)


def test_token_mode() -> None:
    s = load(AEGIS_NATS_TOKEN="t0k")
    assert s.auth_mode == "token"
    assert "t0k" not in repr(s)


def test_nkey_seed_file(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path = tmp_path / "user.nk"
    path.write_bytes(seed + b"\n")
    s = load(AEGIS_NATS_NKEY_SEED_FILE=str(path))
    assert s.auth_mode == "nkey_seed"
    assert s.nats_nkey_seed_file == path


def test_creds_file(tmp_path: Path) -> None:
    path = tmp_path / "svc.creds"
    path.write_text(
        "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.sig\n------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\nSUAXXX\n------END USER NKEY SEED------\n"
    )
    s = load(AEGIS_NATS_CREDS_FILE=str(path))
    assert s.auth_mode == "creds"


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    client = ca.issue_cert("client@example")
    other = trustme.CA().issue_cert("other@example")
    paths = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
        "other_key": tmp_path / "other.key",
        "garbage": tmp_path / "garbage.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    paths["garbage"].write_text("not a certificate\n")
    return paths


def test_mtls_material_loads(pki: dict[str, Path]) -> None:
    s = load(
        AEGIS_NATS_URL="tls://127.0.0.1:4222",
        AEGIS_NATS_TLS_CA=str(pki["ca"]),
        AEGIS_NATS_TLS_CERT=str(pki["cert"]),
        AEGIS_NATS_TLS_KEY=str(pki["key"]),
    )
    assert s.tls_enabled is True


def test_a_ca_alone_turns_tls_on_even_with_a_nats_url(pki: dict[str, Path]) -> None:
    assert load(AEGIS_NATS_TLS_CA=str(pki["ca"])).tls_enabled is True


def test_tls_context_always_verifies(pki: dict[str, Path]) -> None:
    import ssl

    from aegis_service.adapters.nats.tls import build_ssl_context

    context = build_ssl_context(load(AEGIS_NATS_TLS_CA=str(pki["ca"])))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    system = build_ssl_context(load(AEGIS_NATS_URL="tls://127.0.0.1:4222"))
    assert system is not None and system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    assert build_ssl_context(load()) is None


# -- errors: one line naming the variable ---------------------------------------------------------------

ERROR_CASES = [
    ({"AEGIS_NATS_URL": "http://h:4222"}, "AEGIS_NATS_URL", "scheme must be nats:// or tls://"),
    ({"AEGIS_NATS_URL": "nats://:4222"}, "AEGIS_NATS_URL", "missing host"),
    ({"AEGIS_NATS_URL": "nats://h:99999"}, "AEGIS_NATS_URL", "invalid port"),
    ({"AEGIS_NATS_URL": "nats://h:1,"}, "AEGIS_NATS_URL", "empty server URL"),
    ({"AEGIS_NATS_URL": "nats://u:pw@h:4222"}, "AEGIS_NATS_URL", "credentials in the URL"),
    ({"AEGIS_NATS_USER": "svc"}, "AEGIS_NATS_PASSWORD", "required when AEGIS_NATS_USER is set"),
    ({"AEGIS_NATS_PASSWORD": "pw"}, "AEGIS_NATS_USER", "required when AEGIS_NATS_PASSWORD is set"),
    ({"AEGIS_NATS_USER": "a b", "AEGIS_NATS_PASSWORD": "p"}, "AEGIS_NATS_USER", "whitespace"),
    (
        {"AEGIS_NATS_USER": "u", "AEGIS_NATS_PASSWORD": "p", "AEGIS_NATS_TOKEN": "t"},
        "AEGIS_NATS_TOKEN",
        "at most one NATS auth mode",
    ),
    ({"AEGIS_NATS_CREDS_FILE": "/nonexistent/x.creds"}, "AEGIS_NATS_CREDS_FILE", "file not found"),
    ({"AEGIS_NATS_NKEY_SEED_FILE": "/nonexistent/u.nk"}, "AEGIS_NATS_NKEY_SEED_FILE", "file not found"),
    ({"AEGIS_NATS_TLS_CA": "/nonexistent/ca.pem"}, "AEGIS_NATS_TLS_CA", "file not found"),
    ({"AEGIS_NATS_TLS_CERT": "/nonexistent/c.pem"}, "AEGIS_NATS_TLS_CERT", "file not found"),
    ({"AEGIS_SERVICE_NAME": "orders.v2"}, "AEGIS_SERVICE_NAME", "[A-Za-z0-9_-]"),
    ({"AEGIS_INSTANCE_ID": "x" * 65}, "AEGIS_INSTANCE_ID", "1-64 characters"),
    ({"AEGIS_SERVICE_VERSION": "1 2"}, "AEGIS_SERVICE_VERSION", "must be a semantic version"),
    ({"AEGIS_SERVICE_VERSION": "1.2"}, "AEGIS_SERVICE_VERSION", "MAJOR.MINOR.PATCH"),
    ({"AEGIS_HEALTH_SUBJECT": "health.*"}, "AEGIS_HEALTH_SUBJECT", "without spaces or wildcards"),
    ({"AEGIS_HEALTH_SUBJECT": "health..check"}, "AEGIS_HEALTH_SUBJECT", "dot-separated tokens"),
    (
        {"AEGIS_REGISTRATION_TTL": "soon"},
        "AEGIS_REGISTRATION_TTL",
        "expected a number of seconds, got 'soon'",
    ),
    (
        {"AEGIS_REGISTRATION_TTL": "0.5", "AEGIS_HEARTBEAT_INTERVAL": "0.1"},
        "AEGIS_REGISTRATION_TTL",
        "at least 1",
    ),
    ({"AEGIS_REGISTRATION_TTL": "nan"}, "AEGIS_REGISTRATION_TTL", "finite"),
    ({"AEGIS_HEARTBEAT_INTERVAL": "0"}, "AEGIS_HEARTBEAT_INTERVAL", "greater than 0"),
    (
        {"AEGIS_REGISTRATION_TTL": "2", "AEGIS_HEARTBEAT_INTERVAL": "2"},
        "AEGIS_HEARTBEAT_INTERVAL",
        "must be less than AEGIS_REGISTRATION_TTL",
    ),
    ({"AEGIS_HTTP_BIND": "8080"}, "AEGIS_HTTP_BIND", "expected host:port"),
    ({"AEGIS_HTTP_BIND": "127.0.0.1:http"}, "AEGIS_HTTP_BIND", "port must be an integer 0-65535"),
    ({"AEGIS_HTTP_BIND": "127.0.0.1:65536"}, "AEGIS_HTTP_BIND", "port must be an integer 0-65535"),
    ({"AEGIS_HTTP_BIND": "::1:8080"}, "AEGIS_HTTP_BIND", "IPv6 as [addr]:port"),
    ({"AEGIS_CONNECT_TIMEOUT": "-1"}, "AEGIS_CONNECT_TIMEOUT", "greater than 0"),
    ({"AEGIS_NATS_REQUEST_TIMEOUT": "fast"}, "AEGIS_NATS_REQUEST_TIMEOUT", "expected a number"),
    ({"AEGIS_BREAKER_FAILURE_THRESHOLD": "0"}, "AEGIS_BREAKER_FAILURE_THRESHOLD", "at least 1"),
    ({"AEGIS_BREAKER_FAILURE_THRESHOLD": "2.5"}, "AEGIS_BREAKER_FAILURE_THRESHOLD", "expected an integer"),
    ({"AEGIS_LOG_LEVEL": "loud"}, "AEGIS_LOG_LEVEL", "must be one of DEBUG, INFO"),
]


@pytest.mark.parametrize(("env", "var", "fragment"), ERROR_CASES, ids=[case[1] for case in ERROR_CASES])
def test_error_names_the_variable_and_the_problem(env: dict[str, str], var: str, fragment: str) -> None:
    message = error_for(**env)
    assert message.startswith(f"{var}: "), message
    assert fragment in message, message


def test_several_problems_are_reported_on_one_line() -> None:
    message = error_for(AEGIS_CONNECT_TIMEOUT="x", AEGIS_LOG_LEVEL="y")
    assert "AEGIS_CONNECT_TIMEOUT:" in message and "AEGIS_LOG_LEVEL:" in message


def test_secret_values_are_never_echoed() -> None:
    message = error_for(AEGIS_NATS_PASSWORD="hunter2-secret")
    assert "hunter2-secret" not in message
    message = error_for(AEGIS_NATS_TOKEN="tok-secret", AEGIS_NATS_CREDS_FILE="/nonexistent")
    assert "tok-secret" not in message


def test_cert_without_key(pki: dict[str, Path]) -> None:
    message = error_for(AEGIS_NATS_TLS_CERT=str(pki["cert"]))
    assert message.startswith("AEGIS_NATS_TLS_KEY: required when AEGIS_NATS_TLS_CERT is set")
    message = error_for(AEGIS_NATS_TLS_KEY=str(pki["key"]))
    assert message.startswith("AEGIS_NATS_TLS_CERT: required when AEGIS_NATS_TLS_KEY is set")


def test_unloadable_ca_bundle(pki: dict[str, Path]) -> None:
    message = error_for(AEGIS_NATS_TLS_CA=str(pki["garbage"]))
    assert message.startswith("AEGIS_NATS_TLS_CA: cannot load CA bundle")


def test_key_not_matching_certificate(pki: dict[str, Path]) -> None:
    message = error_for(AEGIS_NATS_TLS_CERT=str(pki["cert"]), AEGIS_NATS_TLS_KEY=str(pki["other_key"]))
    assert message.startswith("AEGIS_NATS_TLS_CERT/AEGIS_NATS_TLS_KEY: cannot load client certificate")


def test_seed_file_must_hold_a_user_seed(tmp_path: Path) -> None:
    wrong_kind = tmp_path / "account.nk"
    wrong_kind.write_bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT))
    assert "does not hold an nkey user seed" in error_for(AEGIS_NATS_NKEY_SEED_FILE=str(wrong_kind))
    corrupt = tmp_path / "corrupt.nk"
    corrupt.write_text("SUAnotbase32!!\n")
    assert "not hold a valid nkey user seed" in error_for(AEGIS_NATS_NKEY_SEED_FILE=str(corrupt))


def test_creds_file_must_look_like_creds(tmp_path: Path) -> None:
    path = tmp_path / "x.creds"
    path.write_text("hello\n")
    assert error_for(AEGIS_NATS_CREDS_FILE=str(path)).startswith("AEGIS_NATS_CREDS_FILE: ")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert "not a regular file" in error_for(AEGIS_NATS_TLS_CA=str(tmp_path))


# -- helpers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9000", ("::1", 9000)),
        (" 0.0.0.0:65535 ", ("0.0.0.0", 65535)),
    ],
)
def test_parse_http_bind(text: str, expected: tuple[str, int]) -> None:
    assert parse_http_bind(text) == expected


@pytest.mark.parametrize(
    ("ttl", "header"), [(1, "1"), (1.0, "1"), (1.2, "2"), (2, "2"), (30, "30"), (0.3, "1")]
)
def test_ttl_header_rounds_up_to_whole_seconds(ttl: float, header: str) -> None:
    assert ttl_header_value(ttl) == header


def test_main_exits_2_with_one_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AEGIS_REGISTRATION_TTL", "forever")
    assert entry.main() == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "aegis-service: configuration error: "
        "AEGIS_REGISTRATION_TTL: expected a number of seconds, got 'forever'\n"
    )
