"""ServiceDefinition validation table and the camelCase wire format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from aegis_service.domain.models import (
    InstanceStatus,
    ServiceDefinition,
    ServiceDefinitionInput,
    ServiceDefinitionUpdate,
    ServiceInstance,
)

VALID: dict[str, Any] = {"serviceName": "billing", "owner": "team-a", "version": "1.2.3"}


def with_(**changes: Any) -> dict[str, Any]:
    body = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


ACCEPTED = [
    ("minimal", with_()),
    ("name 3 chars", with_(serviceName="abc")),
    ("name 64 chars", with_(serviceName="a" + "b" * 63)),
    ("name with digits and dashes", with_(serviceName="a1-b2-")),
    ("owner 1 char", with_(owner="x")),
    ("owner 100 chars", with_(owner="o" * 100)),
    ("owner unicode", with_(owner="Équipe Ω")),
    ("description 500 chars", with_(description="d" * 500)),
    ("description empty", with_(description="")),
    ("version zeros", with_(version="0.0.0")),
    ("version large numbers", with_(version="10.200.3000")),
    ("server fields ignored", with_(createdAt="2020-01-01T00:00:00Z", updatedAt="2020-01-01T00:00:00+02:00")),
    ("revision ignored", with_(revision=7)),
]

REJECTED = [
    ("name missing", with_(serviceName=...), "serviceName"),
    ("name too short", with_(serviceName="ab"), "serviceName"),
    ("name too long", with_(serviceName="a" * 65), "serviceName"),
    ("name upper case", with_(serviceName="Billing"), "serviceName"),
    ("name starts with digit", with_(serviceName="1billing"), "serviceName"),
    ("name starts with dash", with_(serviceName="-billing"), "serviceName"),
    ("name with dot", with_(serviceName="bill.ing"), "serviceName"),
    ("name with underscore", with_(serviceName="bill_ing"), "serviceName"),
    ("name trailing newline", with_(serviceName="billing\n"), "serviceName"),
    ("name not a string", with_(serviceName=42), "serviceName"),
    ("owner missing", with_(owner=...), "owner"),
    ("owner empty", with_(owner=""), "owner"),
    ("owner 101 chars", with_(owner="o" * 101), "owner"),
    ("description 501 chars", with_(description="d" * 501), "description"),
    ("description null", with_(description=None), "description"),
    ("version missing", with_(version=...), "version"),
    ("version two parts", with_(version="1.2"), "version"),
    ("version four parts", with_(version="1.2.3.4"), "version"),
    ("version v prefix", with_(version="v1.2.3"), "version"),
    ("version prerelease", with_(version="1.2.3-rc1"), "version"),
    ("version trailing newline", with_(version="1.2.3\n"), "version"),
    ("version unicode digits", with_(version="\u0661.\u0662.\u0663"), "version"),
    ("version empty", with_(version=""), "version"),
    ("unknown field", with_(color="blue"), "color"),
    ("snake_case field", with_(service_name="billing"), "service_name"),
    ("naive createdAt", with_(createdAt="2020-01-01T00:00:00"), "createdAt"),
]


@pytest.mark.parametrize("body", [case[1] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_accepted(body: dict[str, Any]) -> None:
    parsed = ServiceDefinitionInput.model_validate(body)
    assert parsed.service_name == body["serviceName"]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED]
)
def test_rejected(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ServiceDefinitionInput.model_validate(body)
    fields = {".".join(str(part) for part in error["loc"]) for error in info.value.errors()}
    assert field in fields


def test_update_body_may_omit_the_name_but_still_validates_it() -> None:
    assert ServiceDefinitionUpdate.model_validate(with_(serviceName=...)).service_name is None
    with pytest.raises(ValidationError):
        ServiceDefinitionUpdate.model_validate(with_(serviceName="NOT VALID"))


def test_stored_definition_serialises_camel_case_with_timezone() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    stored = ServiceDefinition(
        service_name="billing", owner="o", version="1.0.0", created_at=when, updated_at=when
    )
    data = stored.model_dump(mode="json")
    assert set(data) == {"serviceName", "owner", "description", "version", "createdAt", "updatedAt"}
    assert data["createdAt"] == "2024-05-01T12:00:00Z"
    assert ServiceDefinition.model_validate_json(stored.model_dump_json()) == stored


def test_service_instance_wire_format() -> None:
    instance = ServiceInstance(
        service_name="demo",
        instance_id="abc",
        version="1.0.0",
        status=InstanceStatus.ACTIVE,
        last_heartbeat=datetime(2024, 5, 1, tzinfo=UTC),
        metadata={"httpUrl": "http://127.0.0.1:1"},
    )
    data = instance.model_dump(mode="json")
    assert data == {
        "serviceName": "demo",
        "instanceId": "abc",
        "version": "1.0.0",
        "status": "ACTIVE",
        "lastHeartbeat": "2024-05-01T00:00:00Z",
        "metadata": {"httpUrl": "http://127.0.0.1:1"},
    }
    assert {status.value for status in InstanceStatus} == {"ACTIVE", "UNHEALTHY", "STANDBY"}
