"""Per-session state on disk, and the sweep that reclaims what killed sessions left.

Every pytest process that starts something (the xdist controller and each
worker separately) owns one *session directory* under a per-user root::

    $TMPDIR/pytest-aegis-<uid>/s-<pid>-<token>/
        lock        held with flock(LOCK_EX) for the life of the process
        procs/      one JSON file per child process we started
        ...         server dirs: configs, certs, JetStream stores, logs

The kernel drops the flock when the owner dies, however it dies (``kill -9``
included), so "can I take the lock?" is an exact, PID-reuse-proof liveness
test.  The next session sweeps every directory whose lock it can take: it kills
the processes recorded there (checking their start time so a recycled PID is
never hit) and deletes the directory.

Children are also started with ``PR_SET_PDEATHSIG`` (see
:mod:`pytest_aegis.process`), so in practice they die with pytest; the sweep
is the second line of defence and the one that reclaims the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pytest_aegis.errors import WaitTimeout
from pytest_aegis.mounts import unmount_under
from pytest_aegis.ports import sweep_leases
from pytest_aegis.waiting import wait_until

KEEP_MARKER = "KEEP"
#: In a session directory: the session started containers (a sweep of it must look for them).
CONTAINERS_MARKER = "containers"
#: In the root: a sweep found containers of dead sessions it could not remove yet (no engine).
CONTAINERS_PENDING = "containers-pending"


def default_root() -> Path:
    """The per-user root: ``$AEGIS_STATE_DIR`` or ``$TMPDIR/pytest-aegis-<uid>``."""
    env = os.environ.get("AEGIS_STATE_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"pytest-aegis-{os.getuid()}"


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, ``None`` if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent can reap it
        return None
    return int(fields[19])


@dataclass
class SessionState:
    """The session directory of this process (created on first use)."""

    root: Path = field(default_factory=default_root)
    _dir: Path | None = None
    _lock: IO[str] | None = None

    @property
    def dir(self) -> Path:
        if self._dir is None:
            self._open()
        assert self._dir is not None
        return self._dir

    def _open(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"s-{os.getpid()}-{secrets.token_hex(3)}"
        # Build it under a name sweeps ignore and publish it locked, so no sweeper
        # can ever see this directory without its owner's lock held.
        staging = self.root / f".new-{name}"
        staging.mkdir(mode=0o700)
        (staging / "procs").mkdir()
        lock = open(staging / "lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(json.dumps({"pid": os.getpid(), "started": time.time()}))
        lock.flush()
        path = self.root / name
        staging.rename(path)
        self._dir, self._lock = path, lock

    def new_dir(self, prefix: str) -> Path:
        """A fresh private directory inside the session directory."""
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.dir))

    def register_process(self, pid: int, name: str) -> None:
        """Record a child so a later session can kill it if we die first."""
        record = {"pid": pid, "name": name, "start_time": process_start_time(pid)}
        (self.dir / "procs" / str(pid)).write_text(json.dumps(record))

    def unregister_process(self, pid: int) -> None:
        if self._dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self._dir / "procs" / str(pid)).unlink()

    def started_containers(self) -> None:
        """Note that this session starts containers: if it dies, the next sweep removes them."""
        (self.dir / CONTAINERS_MARKER).touch()

    def keep(self) -> None:
        """Mark the directory as kept (``--aegis-keep``): sweeps leave it alone."""
        (self.dir / KEEP_MARKER).write_text(
            "kept by --aegis-keep; remove with: python -m pytest_aegis sweep --kept\n"
        )

    def close(self) -> None:
        """Remove the session directory, unless it is kept."""
        if self._dir is None:
            return
        if not (self._dir / KEEP_MARKER).exists():
            unmount_under(self._dir)  # a power-loss disk a failed stop left mounted
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
        self._dir, self._lock = None, None


@dataclass
class SweepReport:
    """What a sweep reclaimed."""

    sessions: list[Path] = field(default_factory=list)
    killed: list[tuple[int, str]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    #: Some swept session had started containers, or an earlier sweep left some behind.
    containers_to_sweep: bool = False

    def __bool__(self) -> bool:
        return bool(self.sessions)


def _try_lock(path: Path) -> IO[str] | None:
    try:
        handle = open(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def session_is_dead(session_dir: Path) -> bool:
    """Whether the owner of ``session_dir`` is gone: its directory was swept, or its lock is free.
    A kept (``--aegis-keep``) session counts as alive.  (Other backends' sweeps use this for what
    they record outside the directory, e.g. containers.)"""
    if not session_dir.is_dir():
        return True
    if (session_dir / KEEP_MARKER).exists():
        return False
    lock = _try_lock(session_dir / "lock")
    if lock is None:
        return not (session_dir / "lock").exists()
    lock.close()
    return True


def _kill_recorded(procs_dir: Path, report: SweepReport) -> None:
    victims: list[int] = []
    for record_path in procs_dir.glob("*"):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        pid, start_time = int(record["pid"]), record.get("start_time")
        if start_time is None or process_start_time(pid) != start_time:
            continue  # already gone, or the PID now belongs to someone else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            victims.append(pid)
            report.killed.append((pid, str(record.get("name", "?"))))
    for victim in victims:
        with contextlib.suppress(WaitTimeout):
            wait_until(_exited(victim), f"pid {victim} to exit", timeout=5)


def _exited(pid: int) -> Callable[[], bool]:
    return lambda: process_start_time(pid) is None


def sweep(root: Path | None = None, *, include_kept: bool = False) -> SweepReport:
    """Reclaim the session directories of dead owners under ``root``.

    Safe to run concurrently from several processes (xdist workers): the lock
    decides who sweeps a directory, and a live session is never touched.
    """
    root = root or default_root()
    report = SweepReport(containers_to_sweep=(root / CONTAINERS_PENDING).exists())
    sweep_leases()  # the port leases of dead processes (their locks are free already)
    if not root.is_dir():
        return report
    for session_dir in sorted(root.glob("s-*")):
        if (session_dir / KEEP_MARKER).exists() and not include_kept:
            continue
        lock = _try_lock(session_dir / "lock")
        if lock is None:
            continue
        try:
            if not session_dir.exists():  # swept by a concurrent sweeper meanwhile
                continue
            _kill_recorded(session_dir / "procs", report)
            report.containers_to_sweep |= (session_dir / CONTAINERS_MARKER).exists()
            unmount_under(session_dir)  # the dead mounts of its power-loss disks, before the removal
            shutil.rmtree(session_dir, ignore_errors=True)
            report.sessions.append(session_dir)
        finally:
            lock.close()
    return report
