"""An in-memory :class:`~aegis_service.definitions.DefinitionStore` (for tests and experiments): the same
optimistic-locking rules as the KV bucket, revisions from one counter that never repeats."""

from __future__ import annotations

from aegis_service.domain.errors import RevisionMismatch
from aegis_service.domain.models import ServiceDefinition, ServiceDefinitionOut


class MemoryDefinitionStore:
    def __init__(self) -> None:
        self._items: dict[str, ServiceDefinitionOut] = {}
        self._revision = 0

    async def list(self, after: str | None = None, limit: int | None = None) -> list[ServiceDefinitionOut]:
        items = sorted(self._items.values(), key=lambda item: item.service_name)
        items = [item for item in items if after is None or item.service_name > after]
        return items if limit is None else items[:limit]

    async def get(self, name: str) -> ServiceDefinitionOut | None:
        return self._items.get(name)

    async def create(self, definition: ServiceDefinition) -> int:
        if definition.service_name in self._items:
            raise RevisionMismatch(f"'{definition.service_name}' exists")
        return self._put(definition)

    async def update(self, definition: ServiceDefinition, expected_revision: int) -> int:
        self._expect(definition.service_name, expected_revision)
        return self._put(definition)

    async def delete(self, name: str, expected_revision: int) -> None:
        self._expect(name, expected_revision)
        del self._items[name]

    def _expect(self, name: str, revision: int) -> None:
        current = self._items.get(name)
        if current is None or current.revision != revision:
            raise RevisionMismatch(f"'{name}' is not at revision {revision}")

    def _put(self, definition: ServiceDefinition) -> int:
        self._revision += 1
        stored = ServiceDefinitionOut(**definition.model_dump(), revision=self._revision)
        self._items[stored.service_name] = stored
        return self._revision
