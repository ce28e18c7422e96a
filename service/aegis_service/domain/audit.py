"""Audit models (camelCase JSON, frozen): access grants, stored audit events, and the query over them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from aegis_service.domain.models import CamelModel

#: A NATS subject or wildcard pattern: tokens of [A-Za-z0-9_-] or ``*``, optionally ending in ``>``.
SUBJECT_PATTERN = r"^(>|(([A-Za-z0-9_-]+|\*)(\.([A-Za-z0-9_-]+|\*))*(\.>)?))$"
PRINCIPAL_PATTERN = r"^[A-Za-z0-9_.@:-]{1,200}$"

Principal = Annotated[
    str, Field(pattern=PRINCIPAL_PATTERN, description="User, account or service the grant is for.")
]
SubjectPattern = Annotated[
    str, Field(pattern=SUBJECT_PATTERN, max_length=255, description="NATS subject, wildcards allowed.")
]
Permission = Literal["publish", "subscribe"]


class AccessGrantInput(CamelModel):
    model_config = ConfigDict(extra="forbid")

    principal: Principal
    subject_pattern: SubjectPattern
    permission: Permission


class AccessGrantOut(CamelModel):
    id: uuid.UUID
    principal: str
    subject_pattern: str
    permission: Permission
    created_at: AwareDatetime
    event_id: str = Field(description="Id of the audit event this change emitted (its Nats-Msg-Id).")


class AuditEventOut(CamelModel):
    id: str
    type: str
    subject: str
    occurred_at: AwareDatetime
    stored_at: AwareDatetime
    event: dict[str, Any] = Field(description="The event as published.")


class AuditEventPage(CamelModel):
    items: list[AuditEventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


@dataclass(frozen=True)
class AuditFilter:
    """A page of stored events: filters on type and time, keyset pagination on the storage order.

    ``after_seq`` is the cursor: the storage sequence of the last event of the previous page (opaque to
    clients), so pages are stable while new events arrive."""

    event_type: str | None = None
    since: dt.datetime | None = None  # inclusive, on occurredAt
    until: dt.datetime | None = None  # exclusive
    after_seq: int = 0
    limit: int = 100
