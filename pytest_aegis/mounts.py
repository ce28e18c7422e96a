"""Mount points the harness made (a power-loss disk's FUSE mount), found and detached: by the disk
when its server stops, and by the session's end and the sweep of a dead session, whose daemon may
have died and left a mount that answers nothing ("Transport endpoint is not connected")."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_MNT_DETACH = 2  # umount2(2): detach now, clean up once unused (a dead mount too)
_MOUNTINFO = Path("/proc/self/mountinfo")


def mount_points() -> list[Path]:
    """Every mount point of this process's view (empty where there is no ``/proc``)."""
    try:
        lines = _MOUNTINFO.read_text().splitlines()
    except OSError:
        return []
    # the fifth field; spaces in it are escaped as \040
    return [Path(line.split()[4].replace("\\040", " ")) for line in lines if len(line.split()) > 4]


def mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point now."""
    return path in mount_points()


def unmount(path: Path) -> None:
    """Detach the mount at ``path`` (lazily: a dead FUSE mount too), if there is one."""
    if mounted(path):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"cannot unmount {path}: {os.strerror(error)}")


def unmount_under(root: Path) -> list[Path]:
    """Detach every mount under ``root``, deepest first; the mount points detached."""
    points = [point for point in mount_points() if root in point.parents]
    for point in sorted(points, key=lambda path: len(path.parts), reverse=True):
        unmount(point)
    return points
