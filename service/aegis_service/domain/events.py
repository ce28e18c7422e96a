"""Audit events on the wire: the envelope producers write and the checks the consumer applies.

An event is one JSON object published on ``audit.<type>``::

    {"id": "8c1e...", "type": "access_grant.created", "occurredAt": "2026-11-22T03:32:47.576072Z",
     "source": "aegis-service/f8ea...", "data": {...}}

``id`` (1-128 characters) is the idempotency key: it is also the ``Nats-Msg-Id`` header, and the
consumer stores each id once.  ``type`` is required; ``occurredAt`` is optional (ISO 8601 with a UTC
offset; the time of storing when absent).  Pure functions: no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aegis_service.domain.models import utc_now

SUBJECT_PREFIX = "audit."
MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 200
#: The codes a dead letter's ``reason`` starts with (``rejected_by_database`` comes from the store).
REJECTION_CODES = (
    "oversized",
    "bad_json",
    "not_object",
    "missing_id",
    "bad_id",
    "missing_type",
    "bad_occurred_at",
    "rejected_by_database",
)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event for the outbox: published as ``body`` on ``subject`` with ``Nats-Msg-Id: event_id``."""

    event_id: str
    subject: str
    body: bytes


@dataclass(frozen=True, slots=True)
class StorableEvent:
    """A message that passed the checks; ``body`` is the JSON text, stored as-is."""

    event_id: str
    event_type: str
    subject: str
    occurred_at: dt.datetime
    body: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message for the dead-letter table; ``reason`` starts with a stable code (``bad_json: ...``)."""

    subject: str
    raw: bytes
    reason: str

    @property
    def code(self) -> str:
        """The stable code the reason starts with, one of :data:`REJECTION_CODES`."""
        return self.reason.partition(":")[0]


def new_event(
    event_type: str, data: dict[str, Any], source: str, *, now: dt.datetime | None = None
) -> OutgoingEvent:
    event_id = str(uuid.uuid4())
    occurred = (now or utc_now()).isoformat().replace("+00:00", "Z")
    envelope = {"id": event_id, "type": event_type, "occurredAt": occurred, "source": source, "data": data}
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    return OutgoingEvent(event_id, SUBJECT_PREFIX + event_type, body)


def parse_event(subject: str, raw: bytes, max_bytes: int, now: dt.datetime) -> StorableEvent | Rejected:
    """Check one message; anything the consumer cannot store becomes a :class:`Rejected`."""
    if len(raw) > max_bytes:
        return Rejected(subject, raw, f"oversized: {len(raw)} bytes > limit of {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return Rejected(subject, raw, f"bad_json: {exc}")
    if "\\u0000" in text:
        return Rejected(subject, raw, "bad_json: contains \\u0000, which PostgreSQL jsonb cannot store")
    if not isinstance(doc, dict):
        return Rejected(subject, raw, f"not_object: expected a JSON object, got {type(doc).__name__}")
    event_id = doc.get("id")
    if event_id is None or event_id == "":
        return Rejected(subject, raw, "missing_id: the event has no 'id'")
    if not isinstance(event_id, str) or len(event_id) > MAX_ID_LENGTH:
        return Rejected(subject, raw, f"bad_id: 'id' must be a string of 1-{MAX_ID_LENGTH} characters")
    event_type = doc.get("type")
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= MAX_TYPE_LENGTH:
        return Rejected(
            subject, raw, f"missing_type: 'type' must be a string of 1-{MAX_TYPE_LENGTH} characters"
        )
    occurred = doc.get("occurredAt")
    if occurred is None:
        occurred_at = now
    else:
        parsed = _parse_time(occurred)
        if parsed is None:
            return Rejected(subject, raw, "bad_occurred_at: 'occurredAt' must be ISO 8601 with a UTC offset")
        occurred_at = parsed
    return StorableEvent(event_id, event_type, subject, occurred_at, text)


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
