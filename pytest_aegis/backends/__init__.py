"""Backends: where the servers run.  :func:`select_backend` picks one from the config."""

from __future__ import annotations

from pytest_aegis.backends.base import Backend, BackendUnavailable
from pytest_aegis.backends.local import LocalBackend
from pytest_aegis.config import AegisConfig
from pytest_aegis.session import SessionState

__all__ = ["Backend", "BackendUnavailable", "LocalBackend", "select_backend"]


def _docker(config: AegisConfig, session: SessionState) -> Backend:
    from pytest_aegis.backends.docker import DockerBackend  # needs the docker extra: import on demand

    return DockerBackend(config, session)


def _auto(config: AegisConfig, session: SessionState) -> Backend:
    """Local when its binaries are found, else docker when an engine answers, else say what is missing."""
    try:
        return LocalBackend(config, session)
    except BackendUnavailable as local_error:
        try:
            return _docker(config, session)
        except BackendUnavailable as docker_error:
            raise BackendUnavailable(
                "--aegis-backend=auto found neither backend.\n"
                f"local: {local_error}\n"
                f"docker: {docker_error}"
            ) from None


def select_backend(config: AegisConfig, session: SessionState) -> Backend:
    """The backend the config asks for; ``auto``: local when its binaries are found, else docker
    when an engine answers."""
    if config.backend == "auto":
        return _auto(config, session)
    if config.backend == "local":
        return LocalBackend(config, session)
    if config.backend == "docker":
        return _docker(config, session)
    if config.backend == "external":
        from pytest_aegis.backends.external import ExternalBackend  # servers someone else started

        return ExternalBackend(config, session)
    raise BackendUnavailable(
        f"--aegis-backend={config.backend} is not available in this version; use --aegis-backend=local "
        "(or auto)"
    )
