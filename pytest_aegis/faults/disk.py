"""A disk that a power cut can hit: a directory served by :mod:`~pytest_aegis.faults.lazyfs` (its
own process), where writes stay volatile until fsynced.  :meth:`PowerLossDisk.power_loss` drops
every one that was not; a server whose store lives there loses what it had not synced, as after a
real power cut (nats-server's JetStream fsyncs every ``sync_interval``, 2 min by default).

Usable where FUSE is (:func:`unusable` says why not): ``/dev/fuse``, libfuse (the system's
``libfuse3``, else the one the ``fuse-python`` wheel bundles) and root (mounting without
``fusermount``).  The disk is mounted while its server runs: mounted by a start, unmounted after a
stop or a kill, so nothing stays mounted past the server; a session killed with ``kill -9``
leaves a dead mount, which the next session's sweep detaches (:mod:`pytest_aegis.mounts`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.metadata
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_aegis.mounts import mounted, unmount
from pytest_aegis.process import ManagedProcess
from pytest_aegis.session import SessionState

#: Seconds the filesystem may take to mount.
MOUNT_TIMEOUT = 10.0
#: What the filesystem's process prints once mounted (its readiness line).  Here, not in lazyfs:
#: importing that module imports mfusepy, which loads a libfuse, in whichever process imports it.
MOUNTED = "lazyfs: mounted"


@functools.cache
def fuse_library() -> str | None:
    """The libfuse to load (exported as ``FUSE_LIBRARY_PATH`` for mfusepy): ``FUSE_LIBRARY_PATH``
    if set, the system's libfuse 3 or 2, else the copy bundled in the ``fuse-python`` wheel."""
    if os.environ.get("FUSE_LIBRARY_PATH"):
        return os.environ["FUSE_LIBRARY_PATH"]
    for name in ("fuse3", "fuse"):
        if found := ctypes.util.find_library(name):
            return found
    try:
        files = importlib.metadata.distribution("fuse-python").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    bundled = (file for file in files if file.name.startswith("libfuse") and ".so" in file.name)
    return next((str(file.locate()) for file in bundled), None)


def unusable() -> str | None:
    """Why a power-loss disk cannot be mounted here (``None``: it can)."""
    if not sys.platform.startswith("linux"):
        return f"power loss needs FUSE on Linux (this is {sys.platform})"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        return f"power loss needs FUSE: /dev/fuse cannot be opened ({exc.strerror})"
    if os.geteuid() != 0:
        return "power loss mounts its filesystem as root (FUSE without fusermount); this is not root"
    # Not imported here: mfusepy loads a libfuse as it is imported, the system's only, while the
    # filesystem's process is told which one to load (fuse_library: the bundled one too).
    if importlib.util.find_spec("mfusepy") is None:
        return "power loss needs mfusepy: pip install 'pytest-aegis[powerloss]'"
    if fuse_library() is None:
        return "power loss needs libfuse: apt install fuse3 (or pip install fuse-python, which bundles one)"
    return None


@dataclass(frozen=True)
class PowerLoss:
    """What a power loss dropped: the files whose content went back to their last fsync (one
    never synced comes back empty), and the bytes they lost in size."""

    changed: tuple[str, ...]
    bytes_lost: int

    def __str__(self) -> str:
        files = ", ".join(self.changed[:5]) + (" ..." if len(self.changed) > 5 else "")
        count = len(self.changed)
        return f"{count} file(s) back to their last fsync ({self.bytes_lost} bytes): {files or '-'}"


class PowerLossDisk:
    """``mountpoint`` (what the server is given) over ``live``, with ``durable`` beside it."""

    def __init__(self, directory: Path, *, name: str, session: SessionState, keep: bool) -> None:
        self.mountpoint = directory / "disk"
        self.live = directory / "disk.live"
        self.durable = directory / "disk.durable"
        for path in (self.mountpoint, self.live, self.durable):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        library = fuse_library()
        trees = (self.live, self.durable, self.mountpoint)
        self._process = ManagedProcess(
            f"lazyfs[{name}]",
            [sys.executable, "-m", "pytest_aegis.faults.lazyfs", *map(str, trees)],
            ready=lambda line: MOUNTED in line,
            log_path=directory / "lazyfs.log",
            session=session,
            env={**os.environ, **({"FUSE_LIBRARY_PATH": library} if library else {})},
            die_with_parent=not keep,
            hint=f"a FUSE mount at {self.mountpoint}; see {directory / 'lazyfs.log'}",
        )

    @property
    def is_mounted(self) -> bool:
        return self._process.is_running and mounted(self.mountpoint)

    def mount(self) -> None:
        """Mount (if not mounted): until :meth:`unmount`, writes there are volatile until fsynced."""
        if not self.is_mounted:
            unmount(self.mountpoint)  # a dead mount of a daemon that died
            self._process.start(MOUNT_TIMEOUT)

    def unmount(self) -> None:
        """Stop the filesystem (SIGTERM: libfuse unmounts) and detach what it left; what was
        written stays in ``live`` (as in a page cache that outlives the program)."""
        self._process.stop()
        unmount(self.mountpoint)

    def power_loss(self) -> PowerLoss:
        """Lose every write not fsynced: ``live`` becomes ``durable`` again.  Whoever writes here
        must be dead first (the caller kills it); the disk is unmounted by this call."""
        self.unmount()
        changed, lost = [], 0
        for path in sorted(self.live.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(self.live)
            kept = self.durable / relative
            written, synced = path.read_bytes(), kept.read_bytes() if kept.exists() else b""
            if not kept.exists() or written != synced:
                changed.append(str(relative))
                lost += max(len(written) - len(synced), 0)
        shutil.rmtree(self.live)
        shutil.copytree(self.durable, self.live, symlinks=True)
        return PowerLoss(tuple(changed), lost)


def cut_power(disk: PowerLossDisk | None, server: str, kill: Callable[[], object]) -> PowerLoss:
    """A server's power cut: ``kill`` it, then its ``disk`` loses what was not synced;
    :class:`ValueError` when it has no power-loss disk (the spec's ``power_loss``)."""
    if disk is None:
        raise ValueError(f"{server} has no power-loss disk: start it with power_loss=True")
    kill()
    return disk.power_loss()
