"""What a PostgreSQL server is on every backend: the line it logs when it accepts connections,
the lines that explain a failed start, its superuser, and the settings every test server runs
with."""

from __future__ import annotations

from collections.abc import Mapping

#: Logged (to stderr) once the server accepts connections.
READY = "ready to accept connections"
#: Lines that explain a failed start.
FATAL_MARKERS = ("FATAL:", "PANIC:", "ERROR:", "could not bind")
SUPERUSER = "postgres"
#: Durability is worthless for a test database and costs most of the write time.
TEST_SETTINGS: Mapping[str, str] = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def is_ready(line: str) -> bool:
    return READY in line
