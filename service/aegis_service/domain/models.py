"""Wire models (pydantic v2, camelCase JSON, frozen): registry entries, service definitions, health, and
the database schema status the probes report."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

# JSON-Schema (ECMA-262) regexes; ``[0-9]`` rather than ``\d`` so Unicode digits are not accepted.
SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9-]{2,63}$"
SEMVER_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+$"

ServiceName = Annotated[
    str,
    Field(pattern=SERVICE_NAME_PATTERN, description="Lower-case name: a letter, then 2-63 of [a-z0-9-]."),
]
Owner = Annotated[str, Field(min_length=1, max_length=100, description="Owning team or person.")]
Description = Annotated[str, Field(max_length=500, description="Free text, at most 500 characters.")]
SemVer = Annotated[str, Field(pattern=SEMVER_PATTERN, description="MAJOR.MINOR.PATCH, e.g. 1.4.2.")]
HealthStatus = Literal["healthy", "degraded", "unhealthy"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        frozen=True,
    )


# -- service instance registry (KV bucket "service-instances") ---------------------------------------


class InstanceStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    UNHEALTHY = "UNHEALTHY"
    STANDBY = "STANDBY"


class ServiceInstance(CamelModel):
    service_name: str
    instance_id: str
    version: str
    status: InstanceStatus
    last_heartbeat: AwareDatetime
    metadata: dict[str, Any] | None = None


# -- service definitions (KV bucket "service-definitions") --------------------------------------------

_READ_ONLY: JsonDict = {"readOnly": True}


class ServiceDefinitionInput(CamelModel):
    """Body of ``POST /api/services``. Unknown fields are rejected; the server-managed fields ``createdAt``,
    ``updatedAt`` and ``revision`` are accepted (so a fetched document can be sent back) but ignored."""

    model_config = ConfigDict(extra="forbid", validate_by_name=False)  # camelCase only on the wire

    service_name: ServiceName
    owner: Owner
    description: Description = ""
    version: SemVer
    created_at: AwareDatetime | None = Field(
        None, description="Ignored: set by the server.", json_schema_extra=_READ_ONLY
    )
    updated_at: AwareDatetime | None = Field(
        None, description="Ignored: set by the server.", json_schema_extra=_READ_ONLY
    )
    revision: int | None = Field(
        None, description="Ignored: use the If-Match header.", json_schema_extra=_READ_ONLY
    )


class ServiceDefinitionUpdate(ServiceDefinitionInput):
    """Body of ``PUT /api/services/{serviceName}`` (full replacement). ``serviceName`` may be omitted; when
    present it must equal the name in the path."""

    service_name: ServiceName | None = Field(  # type: ignore[assignment]
        None,
        description="Optional and immutable: if sent it must equal the name in the path, else 422.",
        json_schema_extra=_READ_ONLY,
    )


class ServiceDefinition(CamelModel):
    """A stored service definition (the JSON value in KV)."""

    service_name: ServiceName
    owner: Owner
    description: Description = ""
    version: SemVer
    created_at: AwareDatetime
    updated_at: AwareDatetime


class ServiceDefinitionOut(ServiceDefinition):
    revision: int = Field(description="KV revision; also sent as the ETag header.")


class ServiceList(CamelModel):
    """One page of ``GET /api/services``, in name order."""

    items: list[ServiceDefinitionOut]
    count: int = Field(description="Number of items on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


# -- health ---------------------------------------------------------------------------------------------


class CheckResult(CamelModel):
    status: HealthStatus
    detail: str


class NatsHealth(CamelModel):
    connected: bool
    url: str


class HealthReport(CamelModel):
    service: str
    instance_id: str
    version: str
    status: HealthStatus
    nats: NatsHealth
    uptime_seconds: float
    checks: dict[str, CheckResult]


@dataclass(frozen=True)
class SchemaStatus:
    """What the database looks like: reachable, its migration version, the tables it lacks."""

    reachable: bool
    head: int
    version: int | None = None
    missing_tables: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.reachable and not self.missing_tables and self.version == self.head

    def problems(self) -> list[str]:
        if not self.reachable:
            return [f"database unreachable: {self.error}"]
        problems = []
        if self.missing_tables:
            problems.append(f"missing tables: {', '.join(self.missing_tables)}")
        if self.version != self.head:
            problems.append(f"migrations at version {self.version}, head is {self.head}")
        return problems
