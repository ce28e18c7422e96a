"""Where the template database's schema comes from: ``aegis_pg_migrations``.

Three forms, told apart by :func:`parse_migrations`:

* a directory of ``NNN_name.sql`` files (or ``NNN_name.up.sql``, whose
  ``NNN_name.down.sql`` partners are ignored), applied in numeric order, each
  in its own transaction;
* ``package.module:function``: your own migration runner, called once per
  server as ``function(dsn)`` with the template database's DSN (e.g. Alembic's
  ``command.upgrade`` wrapped in a function, as the reference service's ``upgrade`` is);
* ``alembic:path/to/alembic.ini`` (relative to the rootdir): ``alembic upgrade head``, with the
  database given to Alembic as its ``sqlalchemy.url`` (see
  :mod:`~pytest_aegis.postgres.alembic_runner`), so a stock ``env.py`` works unchanged.

:func:`pytest_aegis.assert_migrations_roundtrip` drives each form one step at a time
(:mod:`~pytest_aegis.postgres.roundtrip`).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_aegis.errors import MigrationError
from pytest_aegis.postgres.handle import CONNECT_TIMEOUT

_MIGRATION = re.compile(r"^(\d+)_.+\.sql$")
ALEMBIC_PREFIX = "alembic:"
ALEMBIC_HINT = "pip install 'pytest-aegis[alembic]'"
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class MigrationSource:
    """A parsed ``aegis_pg_migrations`` value: exactly one of ``directory``, ``function`` and
    ``alembic`` (the path of an ``alembic.ini``)."""

    directory: Path | None = None
    function: str | None = None
    alembic: Path | None = None

    @property
    def value(self) -> str:
        """As an ``aegis_pg_migrations`` value, with its path absolute."""
        if self.alembic is not None:
            return f"{ALEMBIC_PREFIX}{self.alembic}"
        return str(self.directory) if self.directory is not None else str(self.function)

    def problem(self) -> str | None:
        """What is wrong that can be seen before a server starts (an Alembic config that is not
        there, Alembic not installed), or ``None``."""
        if self.alembic is None:
            return None
        if not self.alembic.is_file():
            return f"aegis_pg_migrations: no Alembic config at {self.alembic} (relative to the rootdir)"
        if importlib.util.find_spec("alembic") is None or importlib.util.find_spec("sqlalchemy") is None:
            return "aegis_pg_migrations: Alembic needs alembic and SQLAlchemy: " + ALEMBIC_HINT
        return None

    def describe(self) -> str:
        if self.alembic is not None:
            return f"alembic upgrade head ({self.alembic})"
        return str(self.directory) if self.directory is not None else f"{self.function}(dsn)"

    def apply(self, dsn: str) -> None:
        """Bring the (empty) database at ``dsn`` to the migrations' head."""
        if self.alembic is not None:
            from pytest_aegis.postgres import alembic_runner

            alembic_runner.run("upgrade", self.alembic, dsn)
        elif self.directory is not None:
            apply_directory(self.directory, dsn)
        elif self.function is not None:
            run = load_function(self.function)
            try:
                run(dsn)
            except Exception as exc:
                raise MigrationError(f"aegis_pg_migrations: {self.function}(dsn) failed: {exc!r}") from exc


def parse_migrations(value: str, rootdir: Path) -> MigrationSource:
    """``alembic:<ini>``; ``module:function`` when it looks like one and no such path exists; else
    a directory (paths relative to ``rootdir``)."""
    if value.startswith(ALEMBIC_PREFIX):
        ini = Path(value.removeprefix(ALEMBIC_PREFIX))
        return MigrationSource(alembic=ini if ini.is_absolute() else rootdir / ini)
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
