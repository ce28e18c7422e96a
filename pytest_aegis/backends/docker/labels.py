"""The labels on every container we start: whose session it belongs to, so a later session can
tell a live owner from a dead one (see :mod:`pytest_aegis.backends.docker.sweep`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pytest_aegis.session import SessionState

PREFIX = "pytest-aegis"
SESSION = f"{PREFIX}.session"  # the session directory's name, e.g. s-1234-a1b2c3
ROOT = f"{PREFIX}.root"  # the state root holding that directory
PID = f"{PREFIX}.pid"  # the pytest process that started the container
HOST = f"{PREFIX}.host"  # the machine it ran on (a sweep only judges its own machine's sessions)
ROLE = f"{PREFIX}.role"  # nats | postgres | app
NAME = f"{PREFIX}.name"  # the server's name in the session


def hostname() -> str:
    return socket.gethostname()


def session_labels(session: SessionState, *, role: str, name: str) -> dict[str, str]:
    return {
        SESSION: session.dir.name,
        ROOT: str(session.root),
        PID: str(os.getpid()),
        HOST: hostname(),
        ROLE: role,
        NAME: name,
    }


def session_dir_of(labels: dict[str, str]) -> Path | None:
    if SESSION not in labels or ROOT not in labels:
        return None
    return Path(labels[ROOT]) / labels[SESSION]
