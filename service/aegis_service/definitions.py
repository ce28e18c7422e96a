"""The service-definition registry: create, read, replace and delete definitions, with optimistic
locking on the store's revision (the ETag of the HTTP API)."""

from __future__ import annotations

import builtins
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aegis_service.domain.errors import Conflict, NotFound, RevisionMismatch
from aegis_service.domain.models import (
    ServiceDefinition,
    ServiceDefinitionInput,
    ServiceDefinitionOut,
    ServiceDefinitionUpdate,
    utc_now,
)
from aegis_service.metrics import Metrics, NoMetrics, counted


class DefinitionStore(Protocol):
    """Port: where definitions live (KV bucket ``service-definitions``, or memory).

    A revision names one immutable value of a name and is never reused, even across delete and
    re-create. Writes are conditional and raise :class:`RevisionMismatch` when the condition fails."""

    async def list(
        self, after: str | None = None, limit: int | None = None
    ) -> builtins.list[ServiceDefinitionOut]:
        """Live definitions sorted by name: those whose name sorts after ``after`` (all when ``None``),
        at most ``limit`` of them (no bound when ``None``)."""
        ...

    async def get(self, name: str) -> ServiceDefinitionOut | None:
        """The current definition, or ``None`` when there is none."""
        ...

    async def create(self, definition: ServiceDefinition) -> int:
        """Store a new name and return its revision; mismatch when the name exists."""
        ...

    async def update(self, definition: ServiceDefinition, expected_revision: int) -> int:
        """Replace the definition if ``expected_revision`` is still current; returns the new revision."""
        ...

    async def delete(self, name: str, expected_revision: int) -> None:
        """Delete ``name`` if ``expected_revision`` is still current."""
        ...


class CreatedAtCache:
    """``createdAt`` by (name, revision), bounded.

    A revision names one immutable value, so an entry can never be stale: it lets a PUT whose
    ``If-Match`` revision we have seen skip the read of the current value and go straight to the
    conditional write.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, int], datetime] = OrderedDict()

    def remember(self, definition: ServiceDefinitionOut) -> ServiceDefinitionOut:
        self._entries[(definition.service_name, definition.revision)] = definition.created_at
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return definition

    def get(self, name: str, revision: int) -> datetime | None:
        return self._entries.get((name, revision))


@dataclass(frozen=True)
class DefinitionPage:
    """One page of the listing; ``next_after`` is the name the next page starts after (``None``: last)."""

    items: list[ServiceDefinitionOut]
    next_after: str | None


class DefinitionService:
    """The registry's use cases, on any :class:`DefinitionStore`; each is counted in ``metrics``."""

    def __init__(self, store: DefinitionStore, metrics: Metrics | None = None) -> None:
        self._store = store
        self._metrics = metrics or NoMetrics()
        self._created_at = CreatedAtCache()

    async def page(self, after: str | None, limit: int) -> DefinitionPage:
        """Up to ``limit`` definitions whose names sort after ``after``, in name order (keyset
        pagination: a page never repeats or skips a name that exists throughout the listing)."""
        with counted(self._metrics, "list"):
            items = await self._store.list(after, limit + 1)  # one more tells whether a page follows
        page = items[:limit]
        return DefinitionPage(page, page[-1].service_name if len(items) > limit else None)

    async def get(self, name: str) -> ServiceDefinitionOut:
        with counted(self._metrics, "get"):
            return await self._get(name)

    async def _get(self, name: str) -> ServiceDefinitionOut:
        definition = await self._store.get(name)
        if definition is None:
            raise NotFound(f"service '{name}' not found")
        return self._created_at.remember(definition)

    async def create(self, body: ServiceDefinitionInput) -> ServiceDefinitionOut:
        with counted(self._metrics, "create"):
            return await self._create(body)

    async def update(
        self, name: str, body: ServiceDefinitionUpdate, if_match: int | None
    ) -> ServiceDefinitionOut:
        """Replace ``name``; ``if_match=None`` means "whatever the current revision is" (``If-Match: *``).

        The write is conditional on the revision either way; the current value is read first only when
        its ``createdAt`` is not known for that revision.
        """
        with counted(self._metrics, "update"):
            return await self._update(name, body, if_match)

    async def delete(self, name: str, if_match: int | None) -> None:
        """Delete ``name``. With ``If-Match`` the conditional write itself enforces the revision (one
        round trip); only a refused write reads the entry, to tell 404 (gone) from 409 (stale)."""
        with counted(self._metrics, "delete"):
            await self._delete(name, if_match)

    async def _create(self, body: ServiceDefinitionInput) -> ServiceDefinitionOut:
        now = utc_now()
        definition = ServiceDefinition(
            service_name=body.service_name,
            owner=body.owner,
            description=body.description,
            version=body.version,
            created_at=now,
            updated_at=now,
        )
        try:
            revision = await self._store.create(definition)
        except RevisionMismatch:
            raise Conflict(f"service '{definition.service_name}' already exists") from None
        return self._stored(definition, revision)

    async def _update(
        self, name: str, body: ServiceDefinitionUpdate, if_match: int | None
    ) -> ServiceDefinitionOut:
        created_at = self._created_at.get(name, if_match) if if_match is not None else None
        if created_at is None:
            current = await self._get(name)
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
        try:
            revision = await self._store.update(definition, expected)
        except RevisionMismatch:
            await self._get(name)  # NotFound (404) if it was deleted meanwhile
            raise Conflict(
                f"service '{name}' was modified concurrently: revision {expected} is stale"
            ) from None
        return self._stored(definition, revision)

    async def _delete(self, name: str, if_match: int | None) -> None:
        expected = (await self._get(name)).revision if if_match is None else if_match
        try:
            await self._store.delete(name, expected)
        except RevisionMismatch:
            current = await self._get(name)  # NotFound (404) if it does not exist
            raise Conflict(
                f"service '{name}' was modified: revision {expected} is stale, current is {current.revision}"
            ) from None

    def _stored(self, definition: ServiceDefinition, revision: int) -> ServiceDefinitionOut:
        return self._created_at.remember(ServiceDefinitionOut(**definition.model_dump(), revision=revision))
