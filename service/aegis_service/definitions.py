"""Service definitions stored as JSON in KV bucket ``service-definitions`` (key = serviceName), with
optimistic locking on the KV revision."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from datetime import datetime

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aegis_service.errors import Conflict, CorruptEntry, NotFound
from aegis_service.kv import DEFINITIONS_BUCKET, KvGateway, is_wrong_last_sequence
from aegis_service.models import (
    ServiceDefinition,
    ServiceDefinitionInput,
    ServiceDefinitionOut,
    ServiceDefinitionUpdate,
    utc_now,
)

logger = logging.getLogger(__name__)


def _decode(raw: bytes | None, revision: int, key: str) -> ServiceDefinitionOut:
    try:
        stored = ServiceDefinition.model_validate_json(raw or b"")
    except ValidationError:
        raise CorruptEntry(f"stored definition '{key}' (revision {revision}) is not valid") from None
    return ServiceDefinitionOut(**stored.model_dump(), revision=revision)


def _encode(definition: ServiceDefinition) -> bytes:
    return definition.model_dump_json().encode()


TOMBSTONE_CACHE = 10_000


class CreatedAtCache:
    """``createdAt`` by (name, KV revision), bounded.

    A revision names one immutable value of a key (stream sequences never repeat,
    even across delete and re-create), so an entry can never be stale: it lets a
    PUT whose ``If-Match`` revision we have seen skip the read of the current
    value and go straight to the conditional write.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, int], datetime] = OrderedDict()

    def remember(self, definition: ServiceDefinitionOut) -> ServiceDefinitionOut:
        if definition.revision is not None and definition.created_at is not None:
            self._entries[(definition.service_name, definition.revision)] = definition.created_at
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return definition

    def get(self, name: str, revision: int) -> datetime | None:
        return self._entries.get((name, revision))


class DefinitionRepository:
    def __init__(self, gateway: KvGateway) -> None:
        self._gateway = gateway
        self._created_at = CreatedAtCache()
        self._tombstones: OrderedDict[str, int] = OrderedDict()  # name -> revision of our delete marker

    async def list(self) -> list[ServiceDefinitionOut]:
        """All live definitions, sorted by name. Keys come from the stream's subject index (no consumer is
        created, so frequent listing cannot exhaust JetStream's consumer limits); deleted keys are skipped."""
        prefix = f"$KV.{DEFINITIONS_BUCKET}."

        async def collect(kv: KeyValue) -> list[ServiceDefinitionOut]:
            info = await self._gateway.js.stream_info(
                f"KV_{DEFINITIONS_BUCKET}", subjects_filter=f"{prefix}>"
            )
            keys = sorted(subject.removeprefix(prefix) for subject in (info.state.subjects or {}))
            items: list[ServiceDefinitionOut] = []
            for key in keys:
                try:
                    entry = await kv.get(key)
                except nats.js.errors.KeyNotFoundError:  # deleted (marker) or gone meanwhile
                    continue
                if entry.revision is None:
                    continue
                try:
                    items.append(_decode(entry.value, entry.revision, key))
                except CorruptEntry as exc:
                    logger.warning("skipping %s", exc)
            return items

        return await self._gateway.run(DEFINITIONS_BUCKET, collect, "list service definitions")

    async def get(self, name: str) -> ServiceDefinitionOut:
        async def read(kv: KeyValue) -> KeyValue.Entry:
            return await kv.get(name)

        try:
            entry = await self._gateway.run(DEFINITIONS_BUCKET, read, f"read service '{name}'")
        except nats.js.errors.KeyNotFoundError:  # also covers deleted keys
            raise NotFound(f"service '{name}' not found") from None
        assert entry.revision is not None
        return self._created_at.remember(_decode(entry.value, entry.revision, name))

    async def create(self, body: ServiceDefinitionInput) -> ServiceDefinitionOut:
        now = utc_now()
        definition = ServiceDefinition(
            service_name=body.service_name,
            owner=body.owner,
            description=body.description,
            version=body.version,
            created_at=now,
            updated_at=now,
        )
        name = definition.service_name

        payload = _encode(definition)
        tombstone = self._tombstones.pop(name, None)

        async def write(kv: KeyValue) -> int:
            if tombstone is not None:
                # We deleted this name ourselves: a write conditional on that delete
                # marker re-creates it in one round trip (kv.create needs three).
                with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                    return await kv.update(name, payload, last=tombstone)
            return await kv.create(name, payload)

        try:
            revision = await self._gateway.run(DEFINITIONS_BUCKET, write, f"create service '{name}'")
        except nats.js.errors.KeyWrongLastSequenceError:
            raise Conflict(f"service '{name}' already exists") from None
        return self._created_at.remember(ServiceDefinitionOut(**definition.model_dump(), revision=revision))

    async def update(
        self, name: str, body: ServiceDefinitionUpdate, if_match: int | None
    ) -> ServiceDefinitionOut:
        """Replace ``name``; ``if_match=None`` means "whatever the current revision is" (``If-Match: *``).

        The KV write is conditional on the revision either way; the current value is
        read first only when its ``createdAt`` is not known for that revision.
        """
        created_at = self._created_at.get(name, if_match) if if_match is not None else None
        if created_at is None:
            current = await self.get(name)
            expected = current.revision if if_match is None else if_match
            if expected != current.revision:
                raise Conflict(
                    f"service '{name}' was modified: revision {expected} is stale, "
                    f"current is {current.revision}"
                )
            created_at = current.created_at
        else:
            assert if_match is not None
            expected = if_match
        definition = ServiceDefinition(
            service_name=name,
            owner=body.owner,
            description=body.description,
            version=body.version,
            created_at=created_at,
            updated_at=utc_now(),
        )

        async def write(kv: KeyValue) -> int:
            return await kv.update(name, _encode(definition), last=expected)

        try:
            revision = await self._gateway.run(DEFINITIONS_BUCKET, write, f"update service '{name}'")
        except nats.js.errors.KeyWrongLastSequenceError:
            await self.get(name)  # NotFound (404) if it was deleted meanwhile
            raise Conflict(
                f"service '{name}' was modified concurrently: revision {expected} is stale"
            ) from None
        return self._created_at.remember(ServiceDefinitionOut(**definition.model_dump(), revision=revision))

    async def delete(self, name: str, if_match: int | None) -> None:
        """Delete ``name``.  With ``If-Match`` the KV write itself enforces the
        revision (one round trip); only a refused write reads the entry, to tell
        404 (gone) from 409 (stale)."""
        expected = (await self.get(name)).revision if if_match is None else if_match

        async def remove(kv: KeyValue) -> int:
            # kv.delete() hides the marker's revision; publish the same marker
            # ourselves to learn it, so a later create of this name is one write.
            ack = await self._gateway.js.publish(
                f"$KV.{DEFINITIONS_BUCKET}.{name}",
                b"",
                headers={"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(expected)},
            )
            return ack.seq

        try:
            marker = await self._gateway.run(DEFINITIONS_BUCKET, remove, f"delete service '{name}'")
        except nats.js.errors.APIError as exc:
            if not is_wrong_last_sequence(exc):
                raise
            current = await self.get(name)  # NotFound (404) if it does not exist
            raise Conflict(
                f"service '{name}' was modified: revision {expected} is stale, current is {current.revision}"
            ) from None
        self._tombstones[name] = marker
        if len(self._tombstones) > TOMBSTONE_CACHE:
            self._tombstones.popitem(last=False)
