"""Round-trip assertions for a NATS service: health check, registration, registry API.

Each fails with a message naming the step that diverged and what was seen:
the replies that came back but did not match, the last registry entry, the
HTTP status and body at the step that went wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from pytest_aegis.assertions.replies import first_match
from pytest_aegis.waiting import Poll

INSTANCES_BUCKET = "service-instances"
DEFINITIONS_BUCKET = "service-definitions"


class ServiceInstance(BaseModel):
    """A registry entry as services write it to KV ``service-instances`` (camelCase JSON)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    service_name: str
    instance_id: str
    version: str
    status: str = Field(pattern="^(ACTIVE|UNHEALTHY|STANDBY)$")
    last_heartbeat: AwareDatetime
    metadata: dict[str, Any] | None = None


# -- health check ------------------------------------------------------------------


async def assert_health_check(
    nc: Client,
    subject: str = "health.check",
    *,
    service: str | None = None,
    status: str | None = "healthy",
    within: float = 1.0,
) -> dict[str, Any]:
    """Request a health check on ``subject`` and assert a reply arrives within
    ``within`` seconds from ``service`` (any service if ``None``) with ``status``.

    Every responder's reply is considered, so a shared subject works; returns
    the matching reply as soon as it arrives (``within`` bounds the wait: it is not a latency
    check, which a loaded CI machine would fail; the benchmark measures latency).  On failure,
    lists the replies that did not match, with their bodies.
    """

    def judge(doc: dict[str, Any]) -> str | None:
        problems = []
        if service is not None and doc.get("service") != service:
            problems.append(f"service={doc.get('service')!r}")
        if status is not None and doc.get("status") != status:
            problems.append(f"status={doc.get('status')!r} checks={doc.get('checks')!r}")
        return "; ".join(problems) or None

    replies = await first_match(nc, subject, judge, within=within, payload=b"{}")
    if replies.match is not None:
        return replies.match
    wanted = f"service={service!r} " if service else ""
    raise AssertionError(
        f"health check on {subject!r}: expected a reply from {wanted}with status={status!r} within "
        f"{within * 1000:.0f} ms; replies seen:\n  {replies.seen()}"
    )


# -- registration ------------------------------------------------------------------


#: The registry's key of an instance by default: ``{service}`` and ``{instance}`` are replaced.
INSTANCE_KEY = "{service}.{instance}"


@dataclass(frozen=True)
class Registry:
    """Where a service's instances are registered: a KV ``bucket`` and the ``key`` template."""

    bucket: str = INSTANCES_BUCKET
    key: str = INSTANCE_KEY

    def __post_init__(self) -> None:
        if "{instance}" not in self.key:
            raise ValueError(f"key={self.key!r}: the template needs {{instance}} (and may use {{service}})")

    def key_of(self, service: str, instance: str) -> str:
        return self.key.format(service=service, instance=instance)

    def prefix(self, service: str) -> str:
        """What every key of ``service``'s instances starts with."""
        return self.key.split("{instance}")[0].format(service=service)


async def _instances(
    nc: Client, service_name: str, timeout: float, registry: Registry
) -> dict[str, ServiceInstance | str]:
    """The current entries of ``service_name``'s instances in the registry bucket (invalid ones as
    text); each JetStream request waits ``timeout`` seconds at most."""
    js = nc.jetstream(timeout=timeout)
    kv = await js.key_value(registry.bucket)
    # Stream info lists the subjects with live messages; unlike kv.keys() it
    # creates no consumer, so polling it is cheap.  It filters whole tokens: the rest of the prefix
    # is matched here.
    subjects, prefix = f"$KV.{registry.bucket}.", registry.prefix(service_name)
    tokens = prefix[: prefix.rfind(".") + 1]
    info = await js.stream_info(f"KV_{registry.bucket}", subjects_filter=f"{subjects}{tokens}>")
    listed = (subject.removeprefix(subjects) for subject in (info.state.subjects or {}))
    keys = sorted(key for key in listed if key.startswith(prefix))
    found: dict[str, ServiceInstance | str] = {}
    for key in keys:
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            continue  # expired, deleted or purged (a marker) between listing and reading
        try:
            found[key] = ServiceInstance.model_validate_json(entry.value or b"")
        except ValidationError as exc:
            found[key] = f"invalid entry {entry.value!r}: {exc.errors()[0]['msg']}"
    return found


BUCKET_MISSING = "bucket missing"
NO_JETSTREAM = "no responders (JetStream not enabled, or not reachable from this client)"
#: Seconds a read of the registry may take at least, however little of the poll's time is left.
MIN_READ = 0.25
#: Seconds a request of a read of the registry waits at most.  A request sent while the bucket's
#: stream has no leader (its node just died, no other elected yet) is never answered, not even
#: once one is: a read waiting for it would spend the whole poll, so it gives up and the next
#: read asks again.
READ_TIMEOUT = 1.0


async def _instances_or_problem(
    nc: Client, service_name: str, poll: Poll, registry: Registry
) -> dict[str, ServiceInstance | str] | str:
    """The entries, or why they could not be read (the bucket missing, JetStream not answering:
    during a leader election a replicated bucket answers nothing for a few seconds); each
    request of the read waits :data:`READ_TIMEOUT` at most (and at least :data:`MIN_READ`)."""
    timeout = min(READ_TIMEOUT, max(poll.deadline - time.monotonic(), MIN_READ))
    try:
        return await _instances(nc, service_name, timeout, registry)
    except nats.js.errors.BucketNotFoundError:
        return BUCKET_MISSING
    except nats.errors.TimeoutError:
        return "JetStream did not answer (the bucket's stream without a leader?)"
    except nats.js.errors.ServiceUnavailableError as exc:  # no description: a 503, no responders
        return f"JetStream unavailable ({exc.description})" if exc.description else NO_JETSTREAM
    except nats.errors.NoRespondersError:
        return NO_JETSTREAM


async def assert_instance_registered(
    nc: Client,
    service_name: str,
    instance_id: str | None = None,
    *,
    within: float = 1.0,
    bucket: str = INSTANCES_BUCKET,
    key: str = INSTANCE_KEY,
) -> ServiceInstance:
    """Assert an ACTIVE-or-otherwise valid entry for ``service_name`` (and
    ``instance_id``, if given) appears in the registry within ``within`` seconds: KV ``bucket``,
    at the key ``key`` makes of ``{service}`` and ``{instance}``.

    Returns the parsed :class:`ServiceInstance`.
    """
    registry = Registry(bucket, key)
    wanted = registry.key_of(service_name, instance_id) if instance_id else None
    last: dict[str, ServiceInstance | str] | str = "nothing (no read finished)"
    poll = Poll(within, interval=0.005, max_interval=0.05)
    async for _ in poll.aiter():
        last = await _instances_or_problem(nc, service_name, poll, registry)
        for found_key, entry in ({} if isinstance(last, str) else last).items():
            if isinstance(entry, ServiceInstance) and (wanted is None or found_key == wanted):
                return entry
    what = (
        f"instance {instance_id!r} of {service_name!r}"
        if instance_id
        else f"any instance of {service_name!r}"
    )
    seen = last or "no entries"
    raise AssertionError(f"registration: expected {what} in KV {bucket!r} within {within:.2f}s; seen: {seen}")


async def assert_registration_expires(
    nc: Client,
    service_name: str,
    instance_id: str,
    *,
    within: float,
    bucket: str = INSTANCES_BUCKET,
    key: str = INSTANCE_KEY,
) -> None:
    """Assert the entry of ``instance_id`` is gone from the registry (KV ``bucket``, key ``key``
    as for :func:`assert_instance_registered`) within ``within`` seconds.  A bucket that is not
    there fails: it proves nothing about an entry (a service registering elsewhere)."""
    registry = Registry(bucket, key)
    wanted = registry.key_of(service_name, instance_id)
    last: Any = None
    unreadable: str | None = None
    poll = Poll(within, interval=0.01, max_interval=0.1)
    async for _ in poll.aiter():
        found = await _instances_or_problem(nc, service_name, poll, registry)
        if isinstance(found, str):  # unreadable now (or no bucket): not proof of expiry
            unreadable = found
            continue
        unreadable, last = None, found.get(wanted)
        if last is None:
            return
    expected = f"registration: expected {wanted!r} to expire from KV {bucket!r} within {within:.2f}s"
    if unreadable == BUCKET_MISSING:
        raise AssertionError(
            f"{expected}, but there is no bucket {bucket!r}: nothing there can expire (does the "
            "service register in another bucket? pass bucket=... and key=...)"
        )
    if unreadable is not None:
        raise AssertionError(f"{expected}, but the bucket could not be read (last: {unreadable})")
    raise AssertionError(f"{expected}, but it is still there after {poll.elapsed:.2f}s: {last!r}")


# -- registry API -----------------------------------------------------------------


def default_definition() -> dict[str, Any]:
    return {
        "serviceName": f"aegis-rt-{secrets.token_hex(4)}",
        "owner": "pytest-aegis",
        "description": "registry round-trip probe",
        "version": "1.0.0",
    }


def _step(step: str, response: Any, expected: int) -> None:
    if response.status_code != expected:
        raise AssertionError(
            f"registry round trip, step {step!r}: expected HTTP {expected}, got {response.status_code}; "
            f"body: {response.text[:500]}"
        )


def _revision(response: Any, step: str) -> int:
    etag = response.headers.get("etag", "")
    try:
        return int(etag.removeprefix("W/").strip('"'))
    except ValueError:
        raise AssertionError(
            f"registry round trip, step {step!r}: no usable ETag header (got {etag!r})"
        ) from None


def _iso_aware(value: Any, field: str, step: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AssertionError(
            f"registry round trip, step {step!r}: {field}={value!r} is not ISO 8601 with a timezone"
        )
    return parsed


async def assert_registry_roundtrip(
    http_url: str, nc: Client, definition: dict[str, Any] | None = None
) -> None:
    """Create, read back, check the KV entry and its revision, update with the
    right revision, confirm a stale revision gets 409, delete, and confirm the
    KV entry is gone.  Needs ``httpx`` (the ``http`` extra: ``pytest-aegis[http]``)."""
    import httpx

    body = definition or default_definition()
    name = body["serviceName"]
    async with httpx.AsyncClient(base_url=http_url, timeout=5) as http:
        revision = await _create_and_read_back(http, body)
        kv = await nc.jetstream().key_value(DEFINITIONS_BUCKET)
        await _check_kv_entry(kv, name, body, revision)
        await _update_then_stale_update(http, body, revision)
        deleted = await http.delete(f"/api/services/{name}")
        _step("delete", deleted, 204)
        gone = await http.get(f"/api/services/{name}")
        _step("read after delete", gone, 404)
    try:
        leftover = await kv.get(name)
    except nats.js.errors.KeyNotFoundError:
        return
    raise AssertionError(
        f"registry round trip, step 'KV after delete': entry still there: {leftover.value!r}"
    )


async def _create_and_read_back(http: Any, body: dict[str, Any]) -> int:
    """Steps 'create' and 'read back'; the revision (ETag) both returned."""
    name = body["serviceName"]
    created = await http.post("/api/services", json=body)
    _step("create", created, 201)
    if created.headers.get("location", "").rstrip("/") != f"/api/services/{name}":
        raise AssertionError(
            f"registry round trip, step 'create': Location is {created.headers.get('location')!r}"
        )
    revision = _revision(created, "create")
    _iso_aware(created.json().get("createdAt"), "createdAt", "create")

    fetched = await http.get(f"/api/services/{name}")
    _step("read back", fetched, 200)
    doc = fetched.json()
    for field in ("owner", "description", "version"):
        if doc.get(field) != body.get(field):
            raise AssertionError(
                f"registry round trip, step 'read back': {field}={doc.get(field)!r}, sent {body.get(field)!r}"
            )
    if _revision(fetched, "read back") != revision:
        raise AssertionError(
            "registry round trip, step 'read back': ETag differs from the one create returned"
        )
    return revision


async def _check_kv_entry(kv: Any, name: str, body: dict[str, Any], revision: int) -> None:
    """Step 'KV entry': the definition is in the bucket at the revision the API returned."""
    entry = await kv.get(name)
    if entry.revision != revision:
        raise AssertionError(
            f"registry round trip, step 'KV entry': KV revision {entry.revision}, API said {revision}"
        )
    stored = json.loads(entry.value or b"{}")
    if stored.get("owner") != body["owner"]:
        raise AssertionError(f"registry round trip, step 'KV entry': stored {stored!r}")


async def _update_then_stale_update(http: Any, body: dict[str, Any], revision: int) -> None:
    """Steps 'update with the current revision' (200, a newer revision) and 'stale update' (409)."""
    name = body["serviceName"]
    changed = {**body, "description": "updated by the round trip"}
    updated = await http.put(f"/api/services/{name}", json=changed, headers={"If-Match": f'"{revision}"'})
    _step("update with the current revision", updated, 200)
    new_revision = _revision(updated, "update")
    if new_revision <= revision or updated.json().get("description") != changed["description"]:
        raise AssertionError(
            f"registry round trip, step 'update': revision {revision} -> {new_revision}, "
            f"body {updated.text[:300]}"
        )
    stale = await http.put(f"/api/services/{name}", json=body, headers={"If-Match": f'"{revision}"'})
    _step("update with a stale revision", stale, 409)
    if "error" not in stale.json():
        raise AssertionError(
            f"registry round trip, step 'stale update': 409 without an error body: {stale.text}"
        )
