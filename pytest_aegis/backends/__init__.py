"""Backends: *where* servers run.  One package per backend, one module per server kind
(``local/nats.py``, ``docker/postgres.py``, ``external/nats.py``, ...); :class:`Backend`
(:mod:`.base`) declares what each provides.  :func:`select_backend` picks one from the config."""

from __future__ import annotations

from pytest_aegis.backends.base import Backend
from pytest_aegis.config import AegisConfig, BackendName
from pytest_aegis.errors import BackendUnavailable
from pytest_aegis.session import SessionState

__all__ = ["Backend", "BackendUnavailable", "backend_class", "select_backend"]


def backend_class(name: BackendName) -> type[Backend] | None:
    """The class ``--aegis-backend=name`` selects (``None`` for ``auto``, decided on first use).
    Imported on demand: the docker backend needs the ``docker`` extra."""
    if name == "local":
        from pytest_aegis.backends.local import LocalBackend

        return LocalBackend
    if name == "docker":
        from pytest_aegis.backends.docker import DockerBackend

        return DockerBackend
    if name == "external":
        from pytest_aegis.backends.external import ExternalBackend

        return ExternalBackend
    return None


def _auto(config: AegisConfig, session: SessionState) -> Backend:
    """Local when its binaries are found, else docker when an engine answers, else say what is missing."""
    errors = []
    for name in ("local", "docker"):
        cls = backend_class(name)
        assert cls is not None
        try:
            return cls(config, session)
        except BackendUnavailable as exc:
            errors.append(f"{name}: {exc}")
    raise BackendUnavailable("--aegis-backend=auto found neither backend.\n" + "\n".join(errors))


def select_backend(config: AegisConfig, session: SessionState) -> Backend:
    """The backend the config asks for; ``auto``: local when its binaries are found, else docker
    when an engine answers."""
    cls = backend_class(config.backend)
    return _auto(config, session) if cls is None else cls(config, session)
