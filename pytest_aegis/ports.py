"""Ports: where servers listen, and the leases that keep a port the harness may bind again.

Every port a server or proxy of the harness listens on is *leased* here (:func:`lease_port`), and
every start uses this module.  A lease is held until its owner releases it (:func:`release_port`,
when the server is removed or the proxy closed) or the process ends; in between, nothing else can
take the port, across a node's ``restart()``, a proxy's ``refuse()``/``heal()``, a partition's
heal or PostgreSQL's restart:

- **Not an outgoing connection.**  Leased ports lie outside the kernel's ephemeral range
  (``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 on Linux), which is where every
  outgoing connection and every ``bind(port 0)`` gets its local port.  A port picked with
  ``bind(127.0.0.1:0)`` is one of those, and once released for a restart any client socket can
  get it meanwhile.  Where the range cannot be read (not Linux), the IANA dynamic range
  49152-65535 (macOS, the BSDs, Windows) is assumed to be it; ``AEGIS_PORT_RANGE=LOW-HIGH`` sets
  the leased range outright.  Ports in ``ip_local_reserved_ports`` are never leased.
- **Not another test, xdist worker or session.**  A lease is an ``flock`` on
  ``<lease dir>/<port>.lock`` (``$AEGIS_PORTS_DIR``, else ``$TMPDIR/pytest-aegis-ports``: one
  directory for every session on the machine, whatever its ``AEGIS_STATE_DIR``).  The kernel drops
  the lock when its holder dies, ``kill -9`` included, so a dead session's leases are free at once;
  the next session's sweep (:func:`sweep_leases`) removes their files.
- **Not a process that was there first.**  A port is leased only if it can be bound at that moment
  (without ``SO_REUSEADDR``: a port with a listener or lingering connections is passed over).

What is left is a program outside the harness binding that fixed port itself in between, which
the servers report as "address already in use" (:func:`port_was_taken`); a first start then tries
again on a new port (:func:`start_on_free_port`).

Libraries considered: ``portpicker`` coordinates processes only through its port server, a daemon
every machine (each CI runner, each laptop) would have to run, and without it hands out ports that
are "not guaranteed unique"; Yelp's ``ephemeral-port-reserve`` keeps a port in TIME_WAIT, which
holds it against ``bind(0)`` for a minute, not for a server's lifetime and not against an outgoing
connection.  A lock file per port needs neither a daemon nor a timer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pytest_aegis.errors import ConfigError, PortRangeError

T = TypeVar("T")

#: Every server the harness starts listens here, and tests send traffic only here.
LOOPBACK = "127.0.0.1"
#: "Pick a free port and log it" (nats-server's ``-1``).
RANDOM_PORT = -1
#: How many fresh ports a start tries before it gives up.
PORT_ATTEMPTS = 3
#: What a server or an engine says when the port was taken before it could bind it (PostgreSQL,
#: nats-server, the Docker engine, Python's ``OSError``).
PORT_TAKEN = ("could not bind", "already in use", "port is already allocated")

#: The environment variable that sets the leased range (``LOW-HIGH``, inclusive).
RANGE_ENV = "AEGIS_PORT_RANGE"
#: The environment variable that sets the lease directory.
DIR_ENV = "AEGIS_PORTS_DIR"
#: The lowest port leased by default: below it live the fixed ports of common servers (4222,
#: 5432, 6379, 8080, 8222, 9090, ...).
FLOOR = 15000
#: The kernel's ephemeral range where it cannot be read (IANA's dynamic ports).
IANA_EPHEMERAL = (49152, 65535)
#: A range with fewer ports than this is not worth leasing from.
MIN_PORTS = 1000
#: Candidates tried per lease before giving up.
LEASE_TRIES = 200

_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED_FILE = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def ephemeral_range(path: Path = _EPHEMERAL_FILE) -> tuple[int, int]:
    """The kernel's ephemeral range (inclusive); :data:`IANA_EPHEMERAL` where it cannot be read."""
    try:
        low, high = (int(field) for field in path.read_text().split())
    except (OSError, ValueError):
        return IANA_EPHEMERAL
    return low, high


def reserved_ports(path: Path = _RESERVED_FILE) -> frozenset[int]:
    """The ports the administrator reserved (``8080,9000-9010``), never leased."""
    try:
        text = path.read_text().strip()
    except OSError:
        return frozenset()
    reserved: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        with contextlib.suppress(ValueError):
            reserved.update(range(int(low), int(high or low) + 1))
    return frozenset(reserved)


def lease_range(env: Mapping[str, str] | None = None, ephemeral: tuple[int, int] | None = None) -> range:
    """The ports leases are taken from: ``$AEGIS_PORT_RANGE``, else the larger part of
    :data:`FLOOR`-65535 outside the ephemeral range; :class:`ConfigError` naming what is wrong."""
    if text := (os.environ if env is None else env).get(RANGE_ENV, "").strip():
        return _parse_range(text)
    low, high = ephemeral or ephemeral_range()
    below = range(FLOOR, max(FLOOR, low))
    above = range(max(FLOOR, high + 1), 65536)
    best = max(below, above, key=len)
    if len(best) < MIN_PORTS:
        raise ConfigError(
            f"no range of {MIN_PORTS} ports or more outside the kernel's ephemeral range {low}-{high} "
            f"(from {_EPHEMERAL_FILE}) to lease ports from; set {RANGE_ENV}=LOW-HIGH to a range no other "
            "program binds ports in"
        )
    return best


def _parse_range(text: str) -> range:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        first = last = -1
    if not sep or not 1024 <= first < last <= 65535:
        raise ConfigError(
            f"{RANGE_ENV}={text!r} (environment): expected LOW-HIGH with 1024 <= LOW < HIGH <= 65535, "
            f"e.g. {RANGE_ENV}=20000-29999, outside the kernel's ephemeral range {_EPHEMERAL_FILE}"
        )
    return range(first, last + 1)


def lease_dir() -> Path:
    """Where leases live: ``$AEGIS_PORTS_DIR`` or ``$TMPDIR/pytest-aegis-ports``."""
    return Path(os.environ.get(DIR_ENV) or Path(tempfile.gettempdir()) / "pytest-aegis-ports")


def _open_dir() -> Path:
    directory = lease_dir()
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # shared by every user's sessions, as /tmp is
            directory.chmod(0o1777)
    return directory


def _lock(path: Path) -> int | None:
    """An open descriptor holding ``path``'s flock, or ``None`` if someone else holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A sweeper or a releaser may have unlinked the file between our open and our lock: then
        # the lock is on a file nobody else will ever open, and proves nothing.
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class _Leases:
    """This process's leases: port -> the descriptor holding its lock."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[Path, int]] = {}
        self._mutex = threading.Lock()
        self._random = random.Random()

    def lease(self, host: str) -> int:
        ports = lease_range()
        reserved = reserved_ports()
        directory = _open_dir()
        with self._mutex:
            for _ in range(LEASE_TRIES):
                port = self._random.choice(ports)
                if port in reserved or port in self._held:
                    continue
                path = directory / f"{port}.lock"
                fd = _lock(path)
                if fd is None:
                    continue
                if not _bindable(host, port):
                    _unlock(path, fd)
                    continue
                self._held[port] = (path, fd)
                return port
        raise PortRangeError(
            f"no port to lease on {host} after {LEASE_TRIES} tries in {ports.start}-{ports.stop - 1} "
            f"(leases in {directory}): they were leased by other sessions or in use; set {RANGE_ENV}="
            "LOW-HIGH to a wider range outside the kernel's ephemeral one, or stop what holds them"
        )

    def release(self, port: int) -> None:
        with self._mutex:
            held = self._held.pop(port, None)
        if held is not None:
            _unlock(*held)


def _unlock(path: Path, fd: int) -> None:
    """Remove the lease file, then drop its lock (whoever opened it meanwhile sees it gone)."""
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            path.unlink()
    os.close(fd)


_LEASES = _Leases()


def lease_port(host: str = LOOPBACK) -> int:
    """A port that can be bound on ``host`` now and that nothing else will be given until
    :func:`release_port` (or this process's end): outside the ephemeral range, leased across
    processes.  :class:`PortRangeError` if none is left."""
    return _LEASES.lease(host)


def release_port(port: int | None) -> None:
    """Give up this process's lease on ``port`` (nothing if it holds none, e.g. an external
    server's port): call it once nothing will bind the port again."""
    if port is not None:
        _LEASES.release(port)


def sweep_leases() -> int:
    """Remove the lease files of processes that are gone (their locks are free); how many."""
    directory = lease_dir()
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.glob("*.lock"):
        fd = _lock(path)
        if fd is not None:
            _unlock(path, fd)
            removed += 1
    return removed


def port_was_taken(error: BaseException | str) -> bool:
    """The error (or a server's log) says the port was taken before the server could bind it."""
    return any(marker in str(error) for marker in PORT_TAKEN)


def start_on_free_port(
    start: Callable[[int], T],
    *,
    attempts: int = PORT_ATTEMPTS,
    taken: Callable[[Exception], bool] = port_was_taken,
) -> T:
    """``start(port)`` on a newly leased port; again on another one, up to ``attempts`` times in
    all, while it fails because ``taken(error)`` (a program outside the harness bound the port
    first).  The port that started stays leased (its owner releases it with
    :func:`release_port`); the others are released.  Any other error, or the last attempt's,
    propagates.  ``start`` cleans up after itself."""
    for attempt in range(1, attempts + 1):
        port = lease_port()
        try:
            return start(port)
        except Exception as exc:
            release_port(port)
            if attempt == attempts or not taken(exc):
                raise
    raise AssertionError("unreachable: attempts must be at least 1")
