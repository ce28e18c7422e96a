"""The ``docker`` backend: :class:`DockerBackend`, which starts each kind of server with this
package's modules (see the package's docstring)."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import ClassVar, Protocol

from pytest_aegis.app.runtime import AppLaunch, AppRuntime
from pytest_aegis.app.spec import DOCKERFILE
from pytest_aegis.backends.base import Backend
from pytest_aegis.backends.docker.app import DockerApp, build_app_image
from pytest_aegis.backends.docker.engine import Engine
from pytest_aegis.backends.docker.labels import session_labels
from pytest_aegis.backends.docker.nats import DockerNats
from pytest_aegis.backends.docker.postgres import DockerPostgres
from pytest_aegis.backends.docker.thirdparty import DockerServer
from pytest_aegis.config import AegisConfig
from pytest_aegis.errors import BackendUnavailable, SpecError
from pytest_aegis.faults.disk import PowerLossDisk
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.session import SessionState
from pytest_aegis.thirdparty.runtime import ServerLaunch, ServerRuntime

__all__ = ["DockerApp", "DockerBackend", "DockerNats", "DockerPostgres", "Engine"]


class _Removable(Protocol):
    def remove(self) -> None: ...


class DockerBackend(Backend):
    """Servers in containers of a Docker engine (needs the ``docker`` extra and an engine)."""

    name: ClassVar[str] = "docker"

    def __init__(self, config: AegisConfig, session: SessionState, engine: Engine | None = None) -> None:
        super().__init__(config, session)
        session.started_containers()
        self.engine = engine or Engine.connect()
        self.network = config.docker_network
        if self.network == "bridge" and not self.engine.has_network("bridge"):
            raise BackendUnavailable(
                f"--aegis-docker-network=bridge, but the Docker engine at {self.engine.address} has no "
                "'bridge' network (started with --bridge=none?). Pass --aegis-docker-network=host "
                "(or set aegis_docker_network = host / AEGIS_DOCKER_NETWORK=host)"
            )
        self._started: list[_Removable] = []
        self._apps: list[DockerApp] = []

    def describe(self) -> str:
        return (
            f"docker (engine {self.engine.version} at {self.engine.endpoint}, network {self.network}; "
            f"nats image {self.config.docker_nats_image})"
        )

    def describe_postgres(self) -> str:
        return f"postgres image {self.config.docker_pg_image} on engine {self.engine.version}"

    def _labels(self, role: str, name: str) -> dict[str, str]:
        return session_labels(self.session, role=role, name=name)

    def cannot_cluster(self) -> str | None:
        if self.network == "host":
            return None
        return (
            "nats_cluster on the docker backend needs host networking (--aegis-docker-network=host) for now"
        )

    def start_nats(self, material: NatsMaterial, *, name: str, directory: Path) -> DockerNats:
        runtime = DockerNats(
            self.engine,
            material,
            name=name,
            directory=directory,
            image=self.config.docker_nats_image,
            network=self.network,
            labels=self._labels("nats", name),
            start_timeout=self.config.start_timeout,
            disk=self._power_loss_disk(material, name, directory),
        )
        self._started.append(runtime)
        runtime.start()
        return runtime

    def _power_loss_disk(self, material: NatsMaterial, name: str, directory: Path) -> PowerLossDisk | None:
        """The host disk a ``power_loss`` server's store is bind-mounted from (``None`` without)."""
        if not material.spec.power_loss:
            return None
        if not self.engine.is_local:
            raise SpecError(
                f"power_loss=True on the docker backend needs a local engine (the store is a FUSE "
                f"mount of this machine, bind-mounted); this one is at {self.engine.address}"
            )
        return PowerLossDisk(directory, name=name, session=self.session, keep=self.config.keep)

    def start_postgres(self, *, name: str) -> DockerPostgres:
        server = DockerPostgres(
            self.engine,
            name=name,
            image=self.config.docker_pg_image,
            network=self.network,
            labels=self._labels("postgres", name),
            log_dir=self.session.new_dir(f"postgres-{name}"),
            start_timeout=self.config.start_timeout,
        )
        self._started.append(server)
        return server.start()

    @functools.lru_cache(maxsize=4)  # noqa: B019  (one backend per session: the cache dies with it)
    def app_image(self, rootdir: Path | None) -> str:
        if self.config.docker_app_image:
            return self.config.docker_app_image
        return build_app_image(self.engine, rootdir or Path.cwd(), network=self.network)

    def app_launcher(self, launch: AppLaunch) -> AppRuntime:
        """An app whose spec names an ``image`` in a container of it, running the image's own
        command (``"Dockerfile"``: :meth:`app_image`).

        An app without one (``aegis_app_command``, an ``aegis_apps`` line without ``image=``) is a
        command line of *this* machine: it runs as a local process, reaching the containers on
        127.0.0.1.  To run your own service in a container, give its spec an image, or
        ``image=Dockerfile`` and ``--aegis-docker-app-image`` (or let the rootdir's Dockerfile
        build it)."""
        if launch.spec.image is None:
            return super().app_launcher(launch)
        if self.network != "host":
            raise BackendUnavailable(
                "the service under test runs in a container only with --aegis-docker-network=host in "
                "this version (with bridge it cannot reach the servers' 127.0.0.1 ports under the names "
                "their certificates carry)"
            )
        app = DockerApp(
            self.engine,
            launch,
            image=self.app_image(launch.rootdir) if launch.spec.image == DOCKERFILE else launch.spec.image,
            network=self.network,
            labels=self._labels("app", launch.name),
        )
        self._started.append(app)
        self._apps.append(app)
        return app

    def server_runtime(self, launch: ServerLaunch) -> ServerRuntime:
        """A third-party server in a container of its spec's ``image``; a spec without one runs its
        binary as a local process."""
        if launch.spec.image is None:
            return super().server_runtime(launch)
        if self.network != "host":
            raise BackendUnavailable(
                f"the server {launch.spec.name!r} runs in a container only with "
                "--aegis-docker-network=host in this version (it listens on the port the harness "
                "leased, on 127.0.0.1)"
            )
        server = DockerServer(
            self.engine, launch, image=launch.spec.image, labels=self._labels("server", launch.name)
        )
        self._started.append(server)
        return server

    def notices(self) -> list[str]:
        """Images whose containers were to be measured but wrote no coverage data."""
        silent = sorted({app.image for app in self._apps if app.coverage_files == 0})
        return [
            f"coverage: the service's containers of image {image} wrote no coverage data (does the image "
            "have coverage.py? its a1_coverage.pth starts measuring; a killed container writes nothing)"
            for image in silent
        ]

    def close(self) -> None:
        """Remove every container this session started (``--aegis-keep``: leave them)."""
        if not self.config.keep:
            for item in reversed(self._started):
                with contextlib.suppress(Exception):
                    item.remove()
        self._started.clear()
        self.engine.close()
