"""The audit event envelope and the consumer's checks (pure functions)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from aegis_service.domain.events import Rejected, StorableEvent, new_event, parse_event

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def parse(raw: bytes, max_bytes: int = 1024) -> StorableEvent | Rejected:
    return parse_event("audit.x", raw, max_bytes, NOW)


def test_new_event_round_trips_through_the_consumer_checks():
    outgoing = new_event("access_grant.created", {"principal": "alice"}, "svc/1", now=NOW)
    assert outgoing.subject == "audit.access_grant.created"
    parsed = parse_event(outgoing.subject, outgoing.body, 1024, NOW + dt.timedelta(hours=1))
    assert isinstance(parsed, StorableEvent)
    assert parsed.event_id == outgoing.event_id
    assert parsed.event_type == "access_grant.created"
    assert parsed.occurred_at == NOW
    assert json.loads(parsed.body)["data"] == {"principal": "alice"}
    assert json.loads(outgoing.body)["occurredAt"] == "2026-11-22T03:00:00Z"


def test_occurred_at_defaults_to_now():
    parsed = parse(b'{"id": "a", "type": "t"}')
    assert isinstance(parsed, StorableEvent) and parsed.occurred_at == NOW


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b'{"id": "a", "type": "t", "x": "\\u0000"}', "bad_json"),
        (b"42", "not_object"),
        (b'{"type": "t"}', "missing_id"),
        (b'{"id": "", "type": "t"}', "missing_id"),
        (b'{"id": 7, "type": "t"}', "bad_id"),
        (json.dumps({"id": "x" * 129, "type": "t"}).encode(), "bad_id"),
        (b'{"id": "a"}', "missing_type"),
        (b'{"id": "a", "type": ""}', "missing_type"),
        (b'{"id": "a", "type": "t", "occurredAt": "yesterday"}', "bad_occurred_at"),
        (b'{"id": "a", "type": "t", "occurredAt": "2026-11-22T03:00:00"}', "bad_occurred_at"),
        (b'{"id": "a", "type": "t", "occurredAt": 5}', "bad_occurred_at"),
    ],
)
def test_rejections_carry_a_reason_code(raw, code):
    parsed = parse(raw)
    assert isinstance(parsed, Rejected)
    assert parsed.reason.startswith(code + ": "), parsed.reason
    assert (parsed.subject, parsed.raw) == ("audit.x", raw)


def test_size_is_checked_before_parsing():
    raw = json.dumps({"id": "a", "type": "t", "data": "x" * 100}).encode()
    assert isinstance(parse(raw, max_bytes=len(raw)), StorableEvent)
    rejected = parse(raw, max_bytes=len(raw) - 1)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == f"oversized: {len(raw)} bytes > limit of {len(raw) - 1} bytes"
