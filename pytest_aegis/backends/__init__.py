"""Backends: where the servers run.  :func:`select_backend` picks one from the config."""

from __future__ import annotations

from pytest_aegis.backends.base import Backend, BackendUnavailable
from pytest_aegis.backends.local import LocalBackend
from pytest_aegis.config import AegisConfig
from pytest_aegis.session import SessionState

__all__ = ["Backend", "BackendUnavailable", "LocalBackend", "select_backend"]


def select_backend(config: AegisConfig, session: SessionState) -> Backend:
    """The backend the config asks for; ``auto`` means local when its binaries are found."""
    if config.backend in ("auto", "local"):
        return LocalBackend(config, session)
    raise BackendUnavailable(
        f"--aegis-backend={config.backend} is not available in this version; use --aegis-backend=local "
        "(or auto)"
    )
