"""Server logs in the reports of failing tests.

At setup we note how long each running server's log is; when a test fails,
each server it used contributes the part of its log written since then (or
its tail, if it started later), as a report section.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import pytest

MAX_LINES = 120


@runtime_checkable
class LogSource(Protocol):
    """Anything with a name and a log: servers, apps."""

    @property
    def name(self) -> str: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...


USED = pytest.StashKey[list[LogSource]]()
OFFSETS = pytest.StashKey[dict[int, int]]()


def note_offsets(item: pytest.Item, sources: Iterable[LogSource]) -> None:
    item.stash[OFFSETS] = {id(source): source.log_size() for source in sources}


def mark_used(item: pytest.Item, source: LogSource) -> None:
    """Record that ``item`` used ``source`` (for sources not among its fixture values)."""
    used = item.stash.setdefault(USED, [])
    if all(existing is not source for existing in used):
        used.append(source)


def used_sources(item: pytest.Item) -> list[LogSource]:
    recorded: list[LogSource] = item.stash.get(USED, [])
    found = list(recorded)
    funcargs = getattr(item, "funcargs", {}) or {}
    for value in funcargs.values():
        if isinstance(value, LogSource) and all(value is not seen for seen in found):
            found.append(value)
    return found


def log_sections(item: pytest.Item) -> list[tuple[str, str]]:
    offsets = item.stash.get(OFFSETS, {})
    sections = []
    for source in used_sources(item):
        text = source.logs()
        offset = offsets.get(id(source))
        if offset is not None:
            text = text.encode()[offset:].decode(errors="replace")
            title = f"aegis: {source.name} log (during this test)"
        else:
            title = f"aegis: {source.name} log"
        lines = text.splitlines()
        if len(lines) > MAX_LINES:
            lines = [f"... {len(lines) - MAX_LINES} earlier lines cut ...", *lines[-MAX_LINES:]]
        sections.append((title, "\n".join(lines) or "(empty)"))
    return sections
