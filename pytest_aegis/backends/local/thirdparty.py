"""A third-party server as a child process of pytest (the local backend's, and every backend's
default for a spec without an image)."""

from __future__ import annotations

import os
import shlex

from pytest_aegis.backends.local.binaries import find_server_binary
from pytest_aegis.errors import SpecError
from pytest_aegis.ports import LOOPBACK
from pytest_aegis.process import ManagedProcess
from pytest_aegis.thirdparty.runtime import ServerLaunch, ServerRuntime
from pytest_aegis.thirdparty.spec import render


class LocalServer(ManagedProcess):
    """A :class:`ManagedProcess` listening on the launch's port."""

    address = None


def local_server(launch: ServerLaunch) -> ServerRuntime:
    """Run ``launch``'s binary with its arguments (placeholders filled in)."""
    spec = launch.spec
    if spec.binary is None:
        raise SpecError(
            f"server {spec.name!r} has no binary to run as a local process (it names only "
            f"image={spec.image!r}, for the docker backend); give its ServerSpec a binary"
        )
    binary = find_server_binary(spec.name, spec.binary, spec.install_hint)
    argv = [str(binary), *render(spec.args, host=LOOPBACK, port=launch.port, directory=str(launch.directory))]
    return LocalServer(
        launch.name,
        argv,
        ready=launch.ready,
        log_path=launch.log_path,
        session=launch.session,
        env={**os.environ, **launch.env},
        cwd=launch.directory,
        die_with_parent=not launch.keep,
        hint=f"command: {shlex.join(argv)}",
    )
