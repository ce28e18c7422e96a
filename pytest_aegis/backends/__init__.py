"""Backends: *where* servers run.  One package per backend, one module per server kind
(``local/nats.py``, ``docker/postgres.py``, ``external/nats.py``, ...); :class:`Backend`
(:mod:`.base`) declares what each provides.  :func:`select_backend` picks one from the config."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_aegis.config import AegisConfig, BackendName
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable
from pytest_aegis.session import SessionState

if TYPE_CHECKING:
    from pytest_aegis.backends.base import Backend

__all__ = ["BACKENDS", "BackendUnavailable", "backend_class", "check_auto_settings", "select_backend"]


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend's class is (imported on demand: the docker backend needs the ``docker``
    extra), and whether it is made when the session starts (``eager``: the session's owner calls
    its :meth:`~pytest_aegis.backends.base.Backend.own_session` before any test runs)."""

    module: str
    cls: str
    eager: bool = False


#: Every backend ``--aegis-backend`` can name (``auto``: the first of local, docker that can run).
BACKENDS: dict[str, BackendEntry] = {
    "local": BackendEntry("pytest_aegis.backends.local.backend", "LocalBackend"),
    "docker": BackendEntry("pytest_aegis.backends.docker.backend", "DockerBackend"),
    "external": BackendEntry("pytest_aegis.backends.external.backend", "ExternalBackend", eager=True),
}


def backend_class(name: BackendName) -> type[Backend] | None:
    """The class ``--aegis-backend=name`` selects (``None`` for ``auto``, decided on first use)."""
    entry = BACKENDS.get(name)
    if entry is None:
        return None
    cls: type[Backend] = getattr(importlib.import_module(entry.module), entry.cls)
    return cls


def _auto(config: AegisConfig, session: SessionState) -> Backend:
    """Local when its binaries are found, else docker when an engine answers, else say what is missing."""
    errors = []
    for name in ("local", "docker"):
        cls = backend_class(name)
        assert cls is not None
        try:
            return cls(config, session)
        except BackendMisconfigured:
            raise  # a wrong setting is not a reason to run elsewhere
        except BackendUnavailable as exc:
            errors.append(f"{name}: {exc}")
    raise BackendUnavailable("--aegis-backend=auto found neither backend.\n" + "\n".join(errors))


def check_auto_settings(config: AegisConfig) -> None:
    """Raise :class:`BackendMisconfigured` when a setting given for a backend ``auto`` may pick is
    wrong (the local backend's binaries), without making a backend (cheap: a session start under
    ``auto`` imports no backend)."""
    from pytest_aegis.backends.local.binaries import find_nats_server, find_pg_bin_dir

    if config.nats_bin is not None:
        find_nats_server(config)
    if config.pg_bin_dir is not None:
        find_pg_bin_dir(config.pg_bin_dir, config.origin("pg_bin_dir"))


def select_backend(config: AegisConfig, session: SessionState) -> Backend:
    """The backend the config asks for; ``auto``: local when its binaries are found, else docker
    when an engine answers."""
    cls = backend_class(config.backend)
    return _auto(config, session) if cls is None else cls(config, session)
