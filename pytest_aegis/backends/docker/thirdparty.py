"""A third-party server in a container of its spec's image (host networking: it listens on the
port the harness leased, told on its command line).  Its ``{dir}`` is the instance's host
directory, bind-mounted at the same path (writable by the image's user)."""

from __future__ import annotations

import secrets

from pytest_aegis.backends.docker.container import ContainerRun, Mount
from pytest_aegis.backends.docker.engine import Engine
from pytest_aegis.backends.docker.program import ContainerProgram
from pytest_aegis.ports import LOOPBACK
from pytest_aegis.thirdparty.runtime import ServerLaunch
from pytest_aegis.thirdparty.spec import render


class DockerServer(ContainerProgram):
    """One third-party server's container."""

    address = None

    def __init__(self, engine: Engine, launch: ServerLaunch, *, image: str, labels: dict[str, str]) -> None:
        spec = launch.spec
        launch.directory.chmod(0o777)  # the image may run its server as another user
        run = ContainerRun(
            engine,
            name=launch.name,
            docker_name=f"aegis-{spec.name}-{secrets.token_hex(4)}",
            image=image,
            image_setting=f"image= of the server {spec.name!r} (its ServerSpec or aegis_servers line)",
            command=list(
                render(spec.container_args, host=LOOPBACK, port=launch.port, directory=str(launch.directory))
            ),
            env=dict(launch.env),
            labels=labels,
            network="host",
            mounts=[Mount(launch.directory, str(launch.directory), "rw")],
            log_path=launch.log_path,
        )
        super().__init__(run, launch.ready)
