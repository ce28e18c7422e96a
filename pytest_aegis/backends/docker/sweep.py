"""Removing the containers of dead sessions.

Containers do not die with pytest (there is no PR_SET_PDEATHSIG across the
engine), and we do not depend on Ryuk.  Instead every container carries the
labels of :mod:`~pytest_aegis.backends.docker.labels`, and each session start
removes the containers whose session is dead: its directory is gone or its
lock is free (the same exact, PID-reuse-proof test as the process sweep of
:mod:`pytest_aegis.session`).  Only this machine's sessions are judged (label
``pytest-aegis.host``); a kept session (``--aegis-keep``) is alive.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from pytest_aegis.backends.docker import labels
from pytest_aegis.backends.docker.engine import docker_sdk, engine_configured, open_client
from pytest_aegis.session import CONTAINERS_PENDING, default_root, session_is_dead

LOG = logging.getLogger(__name__)
SWEEP_TIMEOUT = 3


def sweep_containers(client: Any) -> list[str]:
    """Remove (force) the containers of dead sessions; return ``"<name> (<session>)"`` for each.

    Run it after :func:`pytest_aegis.session.sweep`: the directories it removed (kept ones too,
    with ``--kept``) make their containers dead here."""
    errors = docker_sdk().errors
    removed: list[str] = []
    # The low-level list: one call, no inspect per container (which fails with NotFound when another
    # session removes its container meanwhile).
    found = client.api.containers(
        all=True, filters={"label": [labels.SESSION, f"{labels.HOST}={labels.hostname()}"]}
    )
    for entry in found:
        session_dir = labels.session_dir_of(entry.get("Labels") or {})
        if session_dir is None or not session_is_dead(session_dir):
            continue
        with contextlib.suppress(errors.NotFound, errors.APIError):  # a concurrent sweeper
            client.api.remove_container(entry["Id"], force=True, v=True)
            name = (entry.get("Names") or ["?"])[0].lstrip("/")
            removed.append(f"{name} ({session_dir.name})")
    return removed


def sweep_if_engine(root: Path | None = None) -> list[str]:
    """Remove the containers of dead sessions, when the docker extra is installed and an engine is
    configured (socket or DOCKER_HOST); never fails the session (a problem is logged).  If it
    cannot reach the engine, it leaves a marker in the state ``root`` so the next sweep tries again."""
    pending = (root or default_root()) / CONTAINERS_PENDING
    if not engine_configured():
        return []
    try:
        docker_sdk()
    except ImportError:
        return []
    try:
        client = open_client(SWEEP_TIMEOUT)
        try:
            removed = sweep_containers(client)
        finally:
            client.close()
    except Exception as exc:  # the sweep is best effort; the session goes on
        LOG.warning("pytest-aegis: could not sweep containers of dead sessions: %s", exc)
        with contextlib.suppress(OSError):
            pending.parent.mkdir(parents=True, exist_ok=True)
            pending.touch()
        return []
    pending.unlink(missing_ok=True)
    return removed
