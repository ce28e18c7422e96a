"""The :class:`~aegis_service.definitions.DefinitionStore` on KV bucket ``service-definitions``: one JSON
value per name (the key), conditional writes on the KV revision."""

from __future__ import annotations

import bisect
import contextlib
import logging
from collections import OrderedDict

import nats.js.errors
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aegis_service.adapters.nats.kv import (
    DEFINITIONS_BUCKET,
    EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER,
    KvGateway,
    is_wrong_last_sequence,
)
from aegis_service.domain.errors import CorruptEntry, RevisionMismatch
from aegis_service.domain.models import ServiceDefinition, ServiceDefinitionOut

logger = logging.getLogger(__name__)

TOMBSTONE_CACHE = 10_000


def _decode(raw: bytes | None, revision: int, key: str) -> ServiceDefinitionOut:
    try:
        stored = ServiceDefinition.model_validate_json(raw or b"")
    except ValidationError:
        raise CorruptEntry(f"stored definition '{key}' (revision {revision}) is not valid") from None
    return ServiceDefinitionOut(**stored.model_dump(), revision=revision)


async def _read(kv: KeyValue, key: str) -> ServiceDefinitionOut | None:
    """The live definition under ``key``; ``None`` when deleted (or gone meanwhile) or undecodable."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:  # deleted (marker) or gone meanwhile
        return None
    if entry.revision is None:
        return None
    try:
        return _decode(entry.value, entry.revision, key)
    except CorruptEntry as exc:
        logger.warning("skipping %s", exc)
        return None


def _encode(definition: ServiceDefinition) -> bytes:
    return definition.model_dump_json().encode()


class KvDefinitionStore:
    def __init__(self, gateway: KvGateway) -> None:
        self._gateway = gateway
        self._tombstones: OrderedDict[str, int] = OrderedDict()  # name -> revision of our delete marker

    async def list(self, after: str | None = None, limit: int | None = None) -> list[ServiceDefinitionOut]:
        """Keys come from the stream's subject index (no consumer is created, so frequent listing cannot
        exhaust JetStream's consumer limits); only the keys of the page are read. Deleted keys are
        skipped, and so are undecodable values."""
        prefix = f"$KV.{DEFINITIONS_BUCKET}."

        async def collect(kv: KeyValue) -> list[ServiceDefinitionOut]:
            info = await self._gateway.js.stream_info(
                f"KV_{DEFINITIONS_BUCKET}", subjects_filter=f"{prefix}>"
            )
            keys = sorted(subject.removeprefix(prefix) for subject in (info.state.subjects or {}))
            items: list[ServiceDefinitionOut] = []
            for key in keys[bisect.bisect_right(keys, after) if after is not None else 0 :]:
                if limit is not None and len(items) >= limit:
                    break
                item = await _read(kv, key)
                if item is not None:
                    items.append(item)
            return items

        return await self._gateway.run(DEFINITIONS_BUCKET, collect, "list service definitions")

    async def get(self, name: str) -> ServiceDefinitionOut | None:
        async def read(kv: KeyValue) -> KeyValue.Entry:
            return await kv.get(name)

        try:
            entry = await self._gateway.run(DEFINITIONS_BUCKET, read, f"read service '{name}'")
        except nats.js.errors.KeyNotFoundError:  # also covers deleted keys
            return None
        assert entry.revision is not None
        return _decode(entry.value, entry.revision, name)

    async def create(self, definition: ServiceDefinition) -> int:
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
            return await self._gateway.run(DEFINITIONS_BUCKET, write, f"create service '{name}'")
        except nats.js.errors.KeyWrongLastSequenceError:
            raise RevisionMismatch(f"'{name}' exists") from None

    async def update(self, definition: ServiceDefinition, expected_revision: int) -> int:
        name = definition.service_name

        async def write(kv: KeyValue) -> int:
            return await kv.update(name, _encode(definition), last=expected_revision)

        try:
            return await self._gateway.run(DEFINITIONS_BUCKET, write, f"update service '{name}'")
        except nats.js.errors.KeyWrongLastSequenceError:
            raise RevisionMismatch(f"'{name}' is not at revision {expected_revision}") from None

    async def delete(self, name: str, expected_revision: int) -> None:
        async def remove(kv: KeyValue) -> int:
            # kv.delete() hides the marker's revision; publish the same marker
            # ourselves to learn it, so a later create of this name is one write.
            ack = await self._gateway.js.publish(
                f"$KV.{DEFINITIONS_BUCKET}.{name}",
                b"",
                headers={
                    "KV-Operation": "DEL",
                    EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER: str(expected_revision),
                },
            )
            return ack.seq

        try:
            marker = await self._gateway.run(DEFINITIONS_BUCKET, remove, f"delete service '{name}'")
        except nats.js.errors.APIError as exc:
            if not is_wrong_last_sequence(exc):
                raise
            raise RevisionMismatch(f"'{name}' is not at revision {expected_revision}") from None
        self._tombstones[name] = marker
        if len(self._tombstones) > TOMBSTONE_CACHE:
            self._tombstones.popitem(last=False)
