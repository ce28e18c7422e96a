"""Where the template database's schema comes from: ``aegis_pg_migrations``.

Two forms, told apart by :func:`parse_migrations`:

* a directory of ``NNN_name.sql`` files (or ``NNN_name.up.sql``, whose
  ``NNN_name.down.sql`` partners are ignored), applied in numeric order, each
  in its own transaction;
* ``package.module:function``: your own migration runner, called once per
  server as ``function(dsn)`` with the template database's DSN (e.g. Alembic's
  ``command.upgrade`` wrapped in a function, or the reference service's
  ``aegis_service.migrations:upgrade``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_aegis.errors import MigrationError
from pytest_aegis.postgres.handle import CONNECT_TIMEOUT

_MIGRATION = re.compile(r"^(\d+)_.+\.sql$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class MigrationSource:
    """A parsed ``aegis_pg_migrations`` value: exactly one of ``directory`` and ``function``."""

    directory: Path | None = None
    function: str | None = None

    def describe(self) -> str:
        return str(self.directory) if self.directory is not None else f"{self.function}(dsn)"

    def apply(self, dsn: str) -> None:
        """Bring the (empty) database at ``dsn`` to the migrations' head."""
        if self.directory is not None:
            apply_directory(self.directory, dsn)
        elif self.function is not None:
            run = load_function(self.function)
            try:
                run(dsn)
            except Exception as exc:
                raise MigrationError(f"aegis_pg_migrations: {self.function}(dsn) failed: {exc!r}") from exc


def parse_migrations(value: str, rootdir: Path) -> MigrationSource:
    """``module:function`` when it looks like one and no such path exists; else a directory
    (relative to ``rootdir``)."""
    path = Path(value)
    if not path.is_absolute():
        path = rootdir / path
    if _CALLABLE.match(value) and not path.exists():
        return MigrationSource(function=value)
    return MigrationSource(directory=path)


def load_function(spec: str) -> Callable[[str], object]:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MigrationError(
            f"aegis_pg_migrations: cannot import {module_name!r} ({exc}); is it installed or on sys.path?"
        ) from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise MigrationError(f"aegis_pg_migrations: {module_name} has no function {attribute!r}")
    return function  # type: ignore[no-any-return]


def migration_files(directory: Path) -> list[Path]:
    """The up migrations of ``directory`` in numeric order; badly named ``.sql`` files are an error."""
    if not directory.is_dir():
        raise MigrationError(f"aegis_pg_migrations: {directory} is not a directory (nor 'module:function')")
    files = []
    for path in directory.iterdir():
        if path.suffix != ".sql" or path.name.endswith(".down.sql"):
            continue
        match = _MIGRATION.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files must be named NNN_name.sql or NNN_name.up.sql")
        files.append((int(match.group(1)), path.name, path))
    numbers = [number for number, _, _ in files]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise MigrationError(f"{directory}: more than one migration numbered {duplicates}")
    return [path for _, _, path in sorted(files)]


def apply_directory(directory: Path, dsn: str) -> None:
    import psycopg  # the postgres extra; this module is read at configure time without it

    files = migration_files(directory)
    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as conn:
        for path in files:
            try:
                with conn.transaction():
                    conn.execute(path.read_bytes())
            except psycopg.Error as exc:
                raise MigrationError(f"migration {path} failed: {exc}") from exc
