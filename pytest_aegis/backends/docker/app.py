"""The service under test in a container: the docker backend's :class:`~pytest_aegis.app.runtime.AppRuntime`.

The image is ``--aegis-docker-app-image``, or built once per session from the
rootdir's ``Dockerfile``.  The container gets the harness's environment (the
same ``AEGIS_NATS_*`` contract as a local process); with host networking the
URLs stay ``127.0.0.1:PORT``.  Every variable whose value is the absolute path
of an existing file (CA, client certificate and key, nkey seed, ``.creds``) has
that file copied into the container at the *same* path before it starts, so
the environment is valid inside the container unchanged.  Readiness is the
same as for a process: the ready line from its output, then the health check
(done by :class:`~pytest_aegis.app.process.AppProcess`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path

from pytest_aegis.app import coverage
from pytest_aegis.app.runtime import AppLaunch
from pytest_aegis.backends.docker.container import ContainerRun, FileSpec, Mount
from pytest_aegis.backends.docker.engine import Engine
from pytest_aegis.backends.docker.program import ContainerProgram
from pytest_aegis.errors import BackendUnavailable


def files_named_in(env: Mapping[str, str]) -> list[FileSpec]:
    """The files whose absolute paths are values of ``env`` (readable: the image may run as non-root)."""
    files = []
    for value in env.values():
        if value.startswith("/") and "\n" not in value:
            path = Path(value)
            if path.is_file():
                files.append(FileSpec(value, path.read_bytes(), 0o644))
    return files


def build_app_image(engine: Engine, rootdir: Path, *, network: str) -> str:
    """Build the rootdir's Dockerfile (the engine's layer cache makes repeats cheap); return the tag."""
    from docker.errors import BuildError, DockerException

    dockerfile = rootdir / "Dockerfile"
    if not dockerfile.is_file():
        raise BackendUnavailable(
            f"the docker backend runs the service under test from an image, but {rootdir} has no "
            "Dockerfile; add one, or name an image with --aegis-docker-app-image"
        )
    tag = f"pytest-aegis-app:{hashlib.sha256(str(rootdir).encode()).hexdigest()[:12]}"
    try:
        engine.client.images.build(
            path=str(rootdir), tag=tag, rm=True, network_mode="host" if network == "host" else None
        )
    except BuildError as exc:
        lines = [str(item.get("stream", item.get("error", ""))).rstrip() for item in exc.build_log]
        tail = "\n".join([f"  {line}" for line in lines if line][-25:])
        raise BackendUnavailable(f"building {dockerfile} failed: {exc.msg}\n{tail}") from None
    except DockerException as exc:
        raise BackendUnavailable(f"building {dockerfile} failed: {exc}") from None
    return tag


class DockerApp(ContainerProgram):
    """One instance of the service in a container (restarts reuse the container)."""

    def __init__(
        self, engine: Engine, launch: AppLaunch, *, image: str, network: str, labels: dict[str, str]
    ) -> None:
        self.image = image
        #: Coverage data files this container's runs added to the session (``None``: not measured).
        self.coverage_files: int | None = None
        env, mounts = dict(launch.env), []
        self._coverage_dir: Path | None = None
        if coverage.measuring():  # the service measures itself if the image has coverage.py
            self._coverage_dir = launch.log_path.parent / "coverage"
            self._coverage_dir.mkdir(exist_ok=True)
            self._coverage_dir.chmod(0o777)  # the image may run as another user
            mounts.append(Mount(self._coverage_dir, coverage.CONTAINER_DIR, "rw"))
            env |= coverage.container_env()
            self.coverage_files = 0
        run = ContainerRun(
            engine,
            name=launch.name,
            docker_name=f"aegis-app-{secrets.token_hex(4)}",
            image=image,
            image_setting="--aegis-docker-app-image",
            command=None,  # the image's own ENTRYPOINT/CMD
            env=env,
            labels=labels,
            network=network,
            files=files_named_in(launch.env),
            mounts=mounts,
            log_path=launch.log_path,
            hint="the app's environment is in AppProcess.env",
        )
        super().__init__(run, launch.ready)

    def stop(self, timeout: float = 10.0) -> int | None:
        code = super().stop(timeout)
        if self._coverage_dir is not None and self.coverage_files is not None:
            self.coverage_files += coverage.adopt(self._coverage_dir)
        return code
