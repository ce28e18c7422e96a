"""What nats-server says while it starts, on every backend: the ready line, the lines that
mean it failed, and the ports and version it logs; and the ports it is given (leased for the
server's lifetime, so that a restart finds them free: :mod:`pytest_aegis.ports`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.ports import LOOPBACK, RANDOM_PORT, lease_port

#: The line after which the server accepts clients.
READY = "Server is ready"
#: A cluster node's line after :data:`READY`: it binds its route port last, and can still fail
#: there (a port another process took meanwhile: ``[FTL] Error listening on router port``).
ROUTES_READY = "Listening for route connections on"
#: Lines that explain a failed start.
FATAL_MARKERS = ("[FTL]", "[ERR]", "nats-server:")
_CLIENT_PORT = re.compile(r"Listening for client connections on (\S+):(\d+)")
_MONITOR_PORT = re.compile(r"Starting http monitor on (\S+):(\d+)")
_VERSION = re.compile(r"Version:\s+(\S+)")


def ready_line(material: NatsMaterial) -> str:
    """The line after which ``material``'s server is up: a cluster node's route listener, else
    :data:`READY`."""
    return READY if material.cluster is None else ROUTES_READY


def readiness(material: NatsMaterial) -> Callable[[str], bool]:
    """Whether a log line is :func:`ready_line` of ``material``'s server."""
    wanted = ready_line(material)
    return lambda line: wanted in line


@dataclass(frozen=True)
class Startup:
    """What the startup lines said (``None``: not logged)."""

    port: int | None
    monitor_port: int | None
    version: str | None


def read_startup(lines: Iterable[str]) -> Startup:
    """The client port, monitoring port and version from a server's startup lines."""
    port = monitor = version = None
    for line in lines:
        if match := _CLIENT_PORT.search(line):
            port = int(match.group(2))
        elif match := _MONITOR_PORT.search(line):
            monitor = int(match.group(2))
        elif match := _VERSION.search(line):
            version = match.group(1)
    return Startup(port, monitor, version)


class StartingNats:
    """What every backend's running nats-server records (the runtimes' shared part): its name,
    where it listens (``-1`` until its ports are leased or its startup lines say), its version,
    and what it was made from."""

    def __init__(self, name: str, material: NatsMaterial, directory: Path, *, start_timeout: float) -> None:
        self.name = name
        self.host = LOOPBACK
        self.port = RANDOM_PORT
        self.monitor_port: int | None = RANDOM_PORT
        self.version = "?"
        self._material = material
        self._directory = directory
        self._timeout = start_timeout

    def _lease_ports(self) -> None:
        """Lease the client and monitoring ports for the server's lifetime, on its first start;
        later starts (a restart) and reloads keep them, and nothing else can take them meanwhile
        (nats-server's own ``-1`` would pick from the kernel's ephemeral range, which every
        outgoing connection draws from).  The pool releases them when it closes."""
        if self.port == RANDOM_PORT:
            self.port = lease_port()
        if self.monitor_port == RANDOM_PORT:
            self.monitor_port = lease_port()

    def _note_startup(self, lines: Iterable[str], *, ports: bool = True) -> None:
        """Take the ports (unless ``ports`` is false: they are not ours, e.g. inside a container
        with published ports) and the version from the server's startup lines."""
        startup = read_startup(lines)
        if ports:
            self.port = startup.port or self.port
            self.monitor_port = startup.monitor_port or self.monitor_port
        self.version = startup.version or self.version
