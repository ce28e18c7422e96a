"""Pausing a server: the ``paused()`` context manager every server handle offers, and what
``pause()`` / ``resume()`` do to a local server's processes.

A local server is paused with ``SIGSTOP`` to its process and to every process it forked: not to
its process group alone, since a postmaster's children each lead a session of their own
(``setsid()`` in every child), so its group holds the postmaster only.  The kernel stops a thread
only when it next runs, so :func:`stop_tree` returns once every thread of the tree has stopped
(with a deadline): from then on the server answers nothing, while its sockets stay open (the
kernel still accepts connections into the backlog and acknowledges what clients send).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from pytest_aegis.waiting import wait_until

PROC = Path("/proc")
#: Seconds :func:`stop_tree` waits for every thread of the tree to stop.
STOP_TIMEOUT = 5.0
#: Thread states (``/proc/<pid>/task/<tid>/stat``) that run no code: stopped (by a signal or a
#: tracer), zombie, dead.
STILL = frozenset("TtZX")


class Pausable(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


@contextlib.contextmanager
def hold_paused(server: Pausable) -> Iterator[None]:
    """``server`` paused for the ``with`` block and resumed however the block ends."""
    server.pause()
    try:
        yield
    finally:
        server.resume()


def stop_tree(pid: int, stopped: set[int], *, timeout: float = STOP_TIMEOUT) -> None:
    """``SIGSTOP`` ``pid`` and its descendants and return once all their threads have stopped;
    raise :class:`~pytest_aegis.errors.WaitTimeout` after ``timeout``.  Each process signalled is
    added to ``stopped`` (what :func:`continue_all` must continue, even after a timeout).  Without
    ``/proc`` (not Linux): ``pid`` alone, once the signal is sent."""
    if not PROC.is_dir():
        if _signal(pid, signal.SIGSTOP):
            stopped.add(pid)
        return

    def all_still() -> bool:
        tree = descendants(pid) | {pid}
        for member in tree - stopped:  # a child forked before its parent stopped: next round checks it
            if _signal(member, signal.SIGSTOP):
                stopped.add(member)
        return all(_still(member) for member in tree)

    wait_until(all_still, f"process {pid} and its children to stop", timeout=timeout)


def continue_all(pids: Iterable[int]) -> None:
    """``SIGCONT`` each of ``pids`` that still exists."""
    for pid in pids:
        _signal(pid, signal.SIGCONT)


def descendants(pid: int) -> set[int]:
    """The processes ``pid`` forked, and theirs (from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.glob("[0-9]*"):
        fields = _stat(entry / "stat")
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))  # state, ppid, ...
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _still(pid: int) -> bool:
    """Every thread of ``pid`` is stopped (or the process is gone)."""
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return True
    states = (_stat(task / "stat") for task in tasks)
    return all(state is None or state[0] in STILL for state in states)


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _stat(path: Path) -> list[str] | None:
    """The fields of a ``/proc`` stat file after the command name (the state first); ``None``
    when the task is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()
