"""The audit pipeline's settings: off without a database URL, validated one-line errors."""

from __future__ import annotations

import pytest

from aegis_service.settings import SettingsError, load_settings


def test_pipeline_is_off_by_default_with_documented_defaults() -> None:
    s = load_settings({})
    assert s.database_url is None
    assert (s.audit_max_event_bytes, s.audit_batch_size) == (65536, 1000)
    assert (s.audit_ack_wait, s.audit_duplicate_window, s.outbox_poll_interval) == (30.0, 120.0, 1.0)


def test_database_url_is_a_secret() -> None:
    s = load_settings({"AEGIS_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:5432/db"})
    assert s.database_url is not None
    assert s.database_url.get_secret_value() == "postgresql://u:hunter2@127.0.0.1:5432/db"
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"AEGIS_DATABASE_URL": "mysql://u:hunter2@h/db"},
            "AEGIS_DATABASE_URL: expected a postgresql:// URL",
        ),
        ({"AEGIS_AUDIT_BATCH_SIZE": "0"}, "AEGIS_AUDIT_BATCH_SIZE: must be at least 1, got '0'"),
        (
            {"AEGIS_AUDIT_MAX_EVENT_BYTES": "lots"},
            "AEGIS_AUDIT_MAX_EVENT_BYTES: expected an integer, got 'lots'",
        ),
        ({"AEGIS_AUDIT_ACK_WAIT": "0"}, "AEGIS_AUDIT_ACK_WAIT: must be greater than 0, got '0'"),
        (
            {"AEGIS_OUTBOX_POLL_INTERVAL": "-1"},
            "AEGIS_OUTBOX_POLL_INTERVAL: must be greater than 0, got '-1'",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert str(info.value) == message
    assert "hunter2" not in str(info.value)
