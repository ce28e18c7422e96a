"""A passthrough FUSE filesystem whose writes are volatile until fsynced, as a disk's are to a
power cut: what :class:`~pytest_aegis.faults.disk.PowerLossDisk` mounts under a server's store.

Every operation goes to the ``live`` directory (what the program sees).  A second directory,
``durable``, holds what a disk would still hold after a power cut: metadata changes (create,
mkdir, rename, unlink, truncate) reach it at once, as on a journaling filesystem; written bytes
only when the file is fsynced (or written through an ``O_SYNC``/``O_DSYNC`` handle).  A power
loss is then: the program killed, this filesystem unmounted, ``live`` replaced by ``durable``.
The design is Jepsen's lazyfs (github.com/dsrhaslab/lazyfs) without its page cache: the written
ranges of each file are all it keeps.

Run as its own process (``python -m pytest_aegis.faults.lazyfs LIVE DURABLE MOUNTPOINT``); it
prints :data:`MOUNTED` once the kernel has the mount, and unmounts on SIGTERM.  Built on mfusepy
(the maintained fork of fusepy: ctypes over libfuse 3 or 2)."""

from __future__ import annotations

import errno
import os
import sys
import threading
from typing import Any

import mfusepy as fuse

from pytest_aegis.faults.disk import MOUNTED

#: Open flags this filesystem handles itself (the kernel's page cache is not the disk here).
_SYNC_FLAGS = os.O_SYNC | os.O_DSYNC
_STAT = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")
_STATVFS = (
    "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize",
    "f_namemax",
)  # fmt: skip


class LazyFS(fuse.Operations):  # type: ignore[misc]  # mfusepy is untyped
    """The operations (mfusepy calls each by its name: no other attribute may take one)."""

    use_ns = True

    def __init__(self, live: str, durable: str, mountpoint: str) -> None:
        self.live, self.durable, self.mountpoint = live, durable, mountpoint
        self._guard = threading.Lock()
        self.unsynced: dict[str, list[tuple[int, int]]] = {}  # path -> written [start, end) ranges
        self.write_through: set[int] = set()  # handles opened O_SYNC / O_DSYNC

    def _live(self, path: str) -> str:
        return os.path.join(self.live, path.lstrip("/"))

    def _durable(self, path: str) -> str:
        return os.path.join(self.durable, path.lstrip("/"))

    def init(self, path: str) -> None:
        print(f"{MOUNTED} {self.mountpoint}", flush=True)

    # -- reads: the live tree ----------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._live(path)) if fh is None else os.fstat(fh)
        times = {"st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}
        return {key: getattr(st, key) for key in _STAT} | times

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._live(path), amode):
            raise fuse.FuseOSError(errno.EACCES)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._live(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._live(path))

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._live(path))
        return {key: getattr(st, key) for key in _STATVFS}

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    # -- metadata: both trees at once -----------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._live(path), mode)
        os.makedirs(self._durable(path), exist_ok=True)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._live(path))
        _quietly(os.rmdir, self._durable(path))

    def unlink(self, path: str) -> None:
        os.unlink(self._live(path))
        with self._guard:
            self.unsynced.pop(path, None)
        _quietly(os.unlink, self._durable(path))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._live(old), self._live(new))
        with self._guard:
            if old in self.unsynced:
                self.unsynced[new] = self.unsynced.pop(old)
        _quietly(os.rename, self._durable(old), self._durable(new))

    def symlink(self, target: str, source: str) -> None:
        os.symlink(source, self._live(target))
        os.symlink(source, self._durable(target))

    def link(self, target: str, source: str) -> None:
        os.link(self._live(source), self._live(target))
        _quietly(os.link, self._durable(source), self._durable(target))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._live(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._live(path), uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(self._live(path))
        else:
            os.utime(self._live(path), ns=times)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is None:
            os.truncate(self._live(path), length)
        else:
            os.ftruncate(fh, length)
        _quietly(os.truncate, self._durable(path), length)  # a size change is metadata

    # -- data: live now, durable at fsync ---------------------------------------------------------

    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        fh = os.open(self._live(path), (flags & ~(os.O_DIRECT | _SYNC_FLAGS)) | os.O_CREAT, mode)
        durable = os.open(self._durable(path), os.O_WRONLY | os.O_CREAT, mode)
        if flags & os.O_TRUNC:
            os.ftruncate(durable, 0)
        os.close(durable)
        if flags & _SYNC_FLAGS:
            self.write_through.add(fh)
        return fh

    def open(self, path: str, flags: int) -> int:
        fh = os.open(self._live(path), flags & ~(os.O_DIRECT | _SYNC_FLAGS))
        if flags & _SYNC_FLAGS:
            self.write_through.add(fh)
        if flags & os.O_TRUNC:
            _quietly(os.truncate, self._durable(path), 0)
        return fh

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        written = os.pwrite(fh, data, offset)
        with self._guard:
            ranges = self.unsynced.setdefault(path, [])
            if ranges and ranges[-1][1] == offset:
                ranges[-1] = (ranges[-1][0], offset + written)
            else:
                ranges.append((offset, offset + written))
        if fh in self.write_through:
            self.fsync(path, 0, fh)
        return written

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        os.posix_fallocate(fh, offset, size)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        self.write_through.discard(fh)
        os.close(fh)
        return 0

    def fsync(self, path: str, _datasync: int, fh: int) -> int:
        """Copy the file's unsynced ranges (and its size) from live to durable."""
        with self._guard:
            ranges = self.unsynced.pop(path, [])
        source = os.open(self._live(path), os.O_RDONLY)
        target = os.open(self._durable(path), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for start, end in ranges:
                at = start
                while at < end and (chunk := os.pread(source, min(1 << 20, end - at), at)):
                    os.pwrite(target, chunk, at)
                    at += len(chunk)
            os.ftruncate(target, os.fstat(source).st_size)
        finally:
            os.close(source)
            os.close(target)
        return 0

    def fsyncdir(self, path: str, _datasync: int, fh: int) -> int:
        return 0  # directories' changes reached durable when they were made


def _quietly(action: Any, *args: Any) -> None:
    """``action(*args)`` on the durable tree, where the entry may not be (never synced there)."""
    try:
        action(*args)
    except (FileNotFoundError, FileExistsError):
        pass


def main(argv: list[str]) -> None:
    live, durable, mountpoint = argv
    options: dict[str, Any] = {"big_writes": True} if fuse.fuse_version_major == 2 else {}
    fuse.FUSE(LazyFS(live, durable, mountpoint), mountpoint, foreground=True, allow_other=True, **options)


if __name__ == "__main__":
    main(sys.argv[1:])
