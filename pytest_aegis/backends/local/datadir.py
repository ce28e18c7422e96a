"""Where PostgreSQL's files live, who owns them, and the cache of initialised clusters.

PostgreSQL refuses to run as root, so when pytest is root the server runs as
``nobody`` (:func:`server_user`).  Its data directory must then be owned by
that user and every parent directory traversable by it, which the session
root (0700, owned by us) is not.  So PostgreSQL's directories live under a
separate root next to it, ``pytest-aegis-pg-<uid>`` (0711: traversable, not
listable), with one directory per session holding a ``session`` file that
names its owner's session directory, and per-server directories inside it
owned by the server user::

    <tmp>/pytest-aegis-pg-<uid>/s-<pid>-<token>/
        session                  the owner's session directory (absolute path)
        pg-<name>-<random>/      owned by the server user, 0700
            data/  sock/

The sweep of :mod:`pytest_aegis.session` kills the postmasters a dead session
recorded (their children exit when the postmaster dies); :func:`sweep_pg_root`
then removes the directories of sessions whose session directory is gone, after
killing what still runs there (the children of a postmaster that died paused:
stopped, they never notice).

``initdb`` runs once per (PostgreSQL version, settings) and its result is
cached under ``$XDG_CACHE_HOME/pytest-aegis`` (default ``~/.cache/pytest-aegis``);
a server start copies the cached cluster (see :func:`cached_cluster`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_aegis.backends.local.binaries import PgBinaries
from pytest_aegis.errors import BackendUnavailable
from pytest_aegis.postgres.startup import SUPERUSER
from pytest_aegis.session import SessionState

# 1 MB WAL segments instead of 16: the cluster every server start copies shrinks from ~39 to ~24 MB.
INITDB_ARGS = ("--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions", "--wal-segsize=1")
CACHE_FORMAT = 1  # bump when the layout of a cache entry changes
_STALE_STAGING = 3600.0
RAM_DIR_MIN_FREE = 1 << 30


@dataclass(frozen=True)
class ServerUser:
    """The account the server runs as; ``uid is None``: as ourselves."""

    uid: int | None = None
    gid: int | None = None
    name: str | None = None

    @property
    def foreign(self) -> bool:
        return self.uid is not None and self.uid != os.geteuid()

    def own(self, path: Path) -> None:
        """Give ``path`` (recursively) to the server user."""
        if self.foreign:
            assert self.uid is not None and self.gid is not None
            chown_tree(path, self.uid, self.gid)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for parent, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                os.chown(os.path.join(parent, entry), uid, gid, follow_symlinks=False)


def server_user() -> ServerUser:
    """``nobody`` when we are root (PostgreSQL will not run as root), else ourselves."""
    if os.geteuid() != 0:
        return ServerUser()
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise BackendUnavailable(
            "pytest runs as root and PostgreSQL refuses to: it would run as `nobody`, "
            "but there is no such account. Run pytest as an unprivileged user, or create `nobody`."
        ) from None
    return ServerUser(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _traversable_by_others(path: Path) -> bool:
    """Every existing ancestor of ``path`` has the others-execute bit."""
    for parent in [path, *path.parents]:
        with contextlib.suppress(FileNotFoundError):
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def pg_root(session_root: Path, user: ServerUser, data_dir: Path | None = None) -> Path:
    """The directory holding the session directories of PostgreSQL's data.

    ``data_dir`` when given (``aegis_pg_data_dir``); else ``/dev/shm`` when it is a
    tmpfs with room (:func:`ram_dir`: copying a cluster there and running in RAM is
    several times faster than on disk, and a test database needs no durability);
    else ``<session root>/..`` or the temp dir, whichever the server user can reach.
    """
    name = f"pytest-aegis-pg-{os.getuid()}"
    if data_dir is not None:
        candidates = [data_dir / name]
    else:
        ram = ram_dir()
        candidates = [
            *([ram / name] if ram is not None else []),
            session_root.parent / name,
            Path(tempfile.gettempdir()) / name,
        ]
    for candidate in candidates:
        if not user.foreign or _traversable_by_others(candidate.parent):
            candidate.mkdir(mode=0o711, parents=True, exist_ok=True)
            if candidate.stat().st_uid == os.geteuid():
                candidate.chmod(0o711)
            return candidate
    raise BackendUnavailable(
        f"no directory for PostgreSQL's data that user {user.name} can reach: tried "
        + ", ".join(str(c) for c in candidates)
        + " (each needs every parent directory to be o+x; or set aegis_pg_data_dir)"
    )


def ram_dir(path: Path = Path("/dev/shm"), min_free: int = RAM_DIR_MIN_FREE) -> Path | None:
    """``path`` when it is a writable tmpfs with at least ``min_free`` bytes free, else None."""
    try:
        with open("/proc/self/mounts") as mounts:
            fstype = next(
                (
                    fields[2]
                    for fields in map(str.split, mounts)
                    if len(fields) > 2 and fields[1] == str(path)
                ),
                None,
            )
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    if fstype != "tmpfs" or usage.free < min_free or not os.access(path, os.W_OK | os.X_OK):
        return None
    return path


def session_pg_dir(root: Path, session: SessionState) -> Path:
    """This session's directory under the PostgreSQL root (created on first use)."""
    directory = root / session.dir.name
    if not directory.exists():
        directory.mkdir(mode=0o711)
        (directory / "session").write_text(str(session.dir))
    return directory


def sweep_pg_root(root: Path) -> list[Path]:
    """Remove the directories of sessions whose session directory no longer exists
    (their processes were killed by the session sweep), and stale initdb staging dirs."""
    removed = []
    for entry in root.glob("*"):
        owner = entry / "session"
        try:
            if entry.name.startswith("initdb-"):
                gone = time.time() - entry.stat().st_mtime > _STALE_STAGING
            else:
                gone = owner.is_file() and not Path(owner.read_text().strip()).exists()
        except OSError:
            continue
        if gone:
            kill_processes_in(entry)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def kill_processes_in(directory: Path) -> list[int]:
    """SIGKILL every process whose working directory is in ``directory`` (a postgres process
    works in its data directory); return their pids.  Only processes this user may signal."""
    inside = str(directory.resolve())
    killed = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == inside or cwd.startswith(inside + os.sep):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-aegis"


def cache_key(binaries: PgBinaries) -> str:
    settings = {
        "format": CACHE_FORMAT,
        "version": binaries.version,
        "bin_dir": str(binaries.bin_dir),
        "superuser": SUPERUSER,
        "initdb": INITDB_ARGS,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"pg-{binaries.version}-{digest}"


@dataclass(frozen=True)
class CachedCluster:
    """An initialised, cleanly shut down data directory and its superuser's password."""

    path: Path
    created: bool  # False: it was already there (a warm start)

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def password(self) -> str:
        return (self.path / "password").read_text().strip()

    def copy_to(self, target: Path, user: ServerUser) -> None:
        """Copy the data directory to ``target`` (modes kept: PostgreSQL insists on 0700)
        and give it to the server user."""
        shutil.copytree(self.data, target, symlinks=True)
        user.own(target)


def _complete(entry: Path) -> bool:
    return (entry / "data" / "PG_VERSION").is_file() and (entry / "password").is_file()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cached_cluster(
    binaries: PgBinaries, user: ServerUser, staging_root: Path, timeout: float
) -> CachedCluster:
    """The cached cluster for ``binaries``, made by ``initdb`` if it is not there yet.

    Safe against concurrent sessions (xdist workers): a file lock serialises the
    makers, ``initdb`` runs in a staging directory the server user can write to,
    and the entry is published with an atomic rename, so a reader sees a whole
    cluster or none.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / cache_key(binaries)
    if _complete(entry):
        return CachedCluster(entry, created=False)
    with _locked(root / f"{entry.name}.lock"):
        if _complete(entry):  # another worker made it while we waited
            return CachedCluster(entry, created=False)
        staging = Path(tempfile.mkdtemp(prefix="initdb-", dir=staging_root))
        try:
            password = secrets.token_urlsafe(18)
            (staging / "pwfile").write_text(password + "\n")
            user.own(staging)
            _initdb(binaries, user, staging / "data", staging / "pwfile", timeout)
            (staging / "pwfile").unlink()
            chown_tree(staging, os.geteuid(), os.getegid())  # the cache is ours; copies go to the user
            (staging / "password").write_text(password + "\n")
            (staging / "password").chmod(0o600)
            publish = root / f".tmp-{entry.name}-{secrets.token_hex(3)}"
            shutil.move(staging, publish)  # a rename on the same filesystem, else a copy
            shutil.rmtree(entry, ignore_errors=True)  # an incomplete leftover, if any
            publish.rename(entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return CachedCluster(entry, created=True)


def _initdb(binaries: PgBinaries, user: ServerUser, data: Path, pwfile: Path, timeout: float) -> None:
    argv = [
        str(binaries.initdb),
        "-D",
        str(data),
        "-U",
        SUPERUSER,
        f"--pwfile={pwfile}",
        "--no-sync",  # the cache is a copy source; a crash mid-write just means a re-initdb
        *INITDB_ARGS,
    ]
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=max(timeout, 60.0),
        cwd=data.parent,
        user=user.uid if user.foreign else None,
        group=user.gid if user.foreign else None,
        env={**os.environ, "LC_ALL": "C"},
    )
    if out.returncode != 0:
        raise BackendUnavailable(
            f"initdb failed (exit {out.returncode}): {' '.join(argv)}\n{out.stdout}{out.stderr}"
        )
