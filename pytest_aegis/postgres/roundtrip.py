"""Migrations one step at a time, up and down, and the schema after each step: what
:func:`pytest_aegis.assert_migrations_roundtrip` checks.

:class:`Steps` is the one shape every ``aegis_pg_migrations`` form is driven through:

* a directory: ``NNN_name.sql`` (or ``NNN_name.up.sql``) up, ``NNN_name.down.sql`` down;
* ``module:function``: ``function(dsn, target=N)`` upgrades to version ``N``; the module also
  defines ``downgrade(dsn, steps=1)`` and ``head() -> int`` (versions ``1..head()``), as the
  reference service's migrations module does;
* ``alembic:path/to/alembic.ini``: Alembic's revisions from base to head (run by
  :mod:`pytest_aegis.postgres.alembic_runner`, which drives this module in a subprocess).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_aegis.errors import MigrationError
from pytest_aegis.postgres.handle import CONNECT_TIMEOUT
from pytest_aegis.postgres.schema import BOOKKEEPING_TABLES, snapshot


class Steps(ABC):
    """A migration history: ``labels`` from the first step to head, one up and one down."""

    labels: list[str]

    @abstractmethod
    def up(self, dsn: str, index: int) -> None:
        """Apply step ``index`` (0-based); every earlier step is applied."""

    @abstractmethod
    def down(self, dsn: str, index: int) -> None:
        """Revert step ``index``, the newest applied."""


@dataclass
class Trace:
    """What a round trip saw: the schema before any step (``up[0]``) and after each step up
    (``up[k]``: steps ``0..k-1`` applied); after each step down (``down[k]``: back to ``up[k]``'s
    state, expected equal); after up again to head (``again``).  ``failure``: the step that raised."""

    labels: list[str]
    up: list[dict[str, str]] = field(default_factory=list)
    down: dict[int, dict[str, str]] = field(default_factory=dict)
    again: dict[str, str] | None = None
    failure: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "labels": self.labels,
            "up": self.up,
            "down": {str(k): v for k, v in self.down.items()},
            "again": self.again,
            "failure": self.failure,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Trace:
        down = data.get("down") or {}
        assert isinstance(down, dict)
        return cls(
            labels=list(data["labels"]),  # type: ignore[call-overload]
            up=list(data["up"]),  # type: ignore[call-overload]
            down={int(k): v for k, v in down.items()},
            again=data.get("again"),  # type: ignore[arg-type]
            failure=data.get("failure"),  # type: ignore[arg-type]
        )


def run_roundtrip(steps: Steps, dsn: str, ignore: Iterable[str] = BOOKKEEPING_TABLES) -> Trace:
    """Every step up, every step down, up again to head, on the empty database at ``dsn``,
    recording the schema after each; stops at the first step that raises."""
    import psycopg

    ignored = tuple(ignore)
    trace = Trace(labels=list(steps.labels))

    def schema() -> dict[str, str]:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
            return snapshot(conn, ignored)

    def attempt(what: str, action: Callable[[], None]) -> bool:
        try:
            action()
        except Exception as exc:
            trace.failure = f"{what} failed: {exc}"
            return False
        return True

    count = len(steps.labels)
    trace.up.append(schema())
    for index, label in enumerate(steps.labels):
        if not attempt(f"up {label}", lambda i=index: steps.up(dsn, i)):  # type: ignore[misc]
            return trace
        trace.up.append(schema())
    for index in reversed(range(count)):
        if not attempt(f"down {steps.labels[index]}", lambda i=index: steps.down(dsn, i)):  # type: ignore[misc]
            return trace
        trace.down[index] = schema()
    for index, label in enumerate(steps.labels):
        if not attempt(f"up {label} (again)", lambda i=index: steps.up(dsn, i)):  # type: ignore[misc]
            return trace
    trace.again = schema()
    return trace


class DirectorySteps(Steps):
    """``NNN_name.sql`` / ``NNN_name.up.sql`` files and their ``NNN_name.down.sql`` partners."""

    def __init__(self, directory: Path) -> None:
        from pytest_aegis.postgres.migrations import migration_files

        self.files = migration_files(directory)
        self.labels = [path.name for path in self.files]
        self.downs = [path.with_name(down_name(path)) for path in self.files]
        missing = [path.name for path in self.downs if not path.is_file()]
        if missing:
            raise MigrationError(
                f"{directory}: no down migration {', '.join(missing)}: a round trip needs a "
                "NNN_name.down.sql beside each up file"
            )

    def up(self, dsn: str, index: int) -> None:
        _execute_file(dsn, self.files[index])

    def down(self, dsn: str, index: int) -> None:
        _execute_file(dsn, self.downs[index])


def down_name(path: Path) -> str:
    stem = path.name.removesuffix(".sql").removesuffix(".up")
    return f"{stem}.down.sql"


def _execute_file(dsn: str, path: Path) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as conn, conn.transaction():
        conn.execute(path.read_bytes())


class FunctionSteps(Steps):
    """``module:function`` with the module's ``downgrade(dsn, steps=1)`` and ``head()``."""

    def __init__(self, spec: str) -> None:
        import importlib

        from pytest_aegis.postgres.migrations import load_function

        self._upgrade = load_function(spec)
        module = importlib.import_module(spec.partition(":")[0])
        downgrade, head = getattr(module, "downgrade", None), getattr(module, "head", None)
        if not callable(downgrade) or not callable(head):
            raise MigrationError(
                f"{spec}: a round trip needs {module.__name__}.downgrade(dsn, steps=1) and "
                f"{module.__name__}.head() -> int beside it (see the docs: migrations)"
            )
        self._downgrade: Callable[..., object] = downgrade
        self.labels = [f"{spec} version {number}" for number in range(1, int(head()) + 1)]

    def up(self, dsn: str, index: int) -> None:
        self._upgrade(dsn, target=index + 1)  # type: ignore[call-arg]

    def down(self, dsn: str, index: int) -> None:
        self._downgrade(dsn, steps=1)
