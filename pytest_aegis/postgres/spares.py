"""Databases cloned ahead of need, so that ``postgres_db`` costs a test well under a millisecond
instead of a ``CREATE DATABASE ... TEMPLATE`` (~30 ms).

One :class:`SpareDatabases` per server keeps up to ``size`` copies of the template ready.  A
worker thread, with an admin connection of its own (a test's statements never queue behind it),
clones a replacement after each :meth:`~SpareDatabases.take` and drops the databases tests gave
back, so a test pays for neither.  When no spare is ready (the first test, a burst of tests, or a
worker that failed), :meth:`~SpareDatabases.take` clones one itself, as before: never slower than
no pool, and a broken server is reported by the test that needs it, with psycopg's error.

Everything the worker made is dropped at :meth:`~SpareDatabases.close`; a session killed with
``kill -9`` leaves its spares behind only on a server it did not start (the external backend's),
where the next session's :meth:`DatabaseAdmin.sweep` drops them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque

import psycopg

from pytest_aegis.postgres.databases import DatabaseAdmin
from pytest_aegis.postgres.handle import PostgresDatabase

LOG = logging.getLogger("pytest_aegis.postgres")

#: Seconds the session's end waits for the worker to finish the statement it is running.
CLOSE_TIMEOUT = 10.0


class SpareDatabases:
    """Up to ``size`` ready copies of ``template`` on ``main``'s server (``size`` 0: none, every
    take clones)."""

    def __init__(self, main: DatabaseAdmin, worker: DatabaseAdmin, template: str, size: int) -> None:
        self._main = main
        self._worker_admin = worker
        self._template = template
        self._size = size
        self._ready: deque[PostgresDatabase] = deque()
        self._to_drop: deque[PostgresDatabase] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        if size > 0:
            self._thread = threading.Thread(target=self._work, name="aegis-spare-databases", daemon=True)
            self._thread.start()

    @property
    def ready_count(self) -> int:
        """How many spares are ready now."""
        with self._wake:
            return len(self._ready)

    @property
    def failure(self) -> BaseException | None:
        """Why the worker stopped making spares (``None`` while it works)."""
        return self._failed

    def take(self) -> PostgresDatabase:
        """A fresh copy of the template, ready now if a spare is, else cloned here."""
        with self._wake:
            database = self._ready.popleft() if self._ready else None
            self._wake.notify()
        return database if database is not None else self._main.create(self._template)

    def give_back(self, database: PostgresDatabase) -> None:
        """Drop ``database`` (in the background when the worker runs; here otherwise)."""
        with self._wake:
            if self._thread is not None and self._failed is None and not self._closing:
                self._to_drop.append(database)
                self._wake.notify()
                return
        self._main.drop(database)

    def _next_job(self) -> tuple[str, PostgresDatabase | None] | None:
        """Wait for work: a database to drop, or room for a spare; ``None`` when closing."""
        with self._wake:
            while not self._closing:
                if self._to_drop:
                    return "drop", self._to_drop.popleft()
                if len(self._ready) < self._size:
                    return "create", None
                self._wake.wait(timeout=1.0)  # woken by take/give_back/close; the timeout re-checks
            return None

    def _work(self) -> None:
        try:
            while (job := self._next_job()) is not None:
                kind, database = job
                if kind == "drop" and database is not None:
                    self._worker_admin.drop(database)
                    continue
                made = self._worker_admin.create(self._template)
                with self._wake:
                    (self._to_drop if self._closing else self._ready).append(made)
        except (psycopg.Error, TimeoutError, OSError) as exc:  # a stopped or restarting server
            LOG.info("pytest-aegis: no more spare databases (%s); postgres_db clones on demand", exc)
            with self._wake:
                self._failed = exc

    def close(self) -> None:
        """Stop the worker and drop every spare and every database given back."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(CLOSE_TIMEOUT)
        with self._wake:
            leftovers = [*self._ready, *self._to_drop]
            self._ready.clear()
            self._to_drop.clear()
        for database in leftovers:
            with contextlib.suppress(psycopg.Error):
                self._main.drop(database)
        self._worker_admin.close()
