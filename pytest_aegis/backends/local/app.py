"""The service under test as a child process of pytest (every backend's default launcher)."""

from __future__ import annotations

import os
import shlex

from pytest_aegis.app import coverage
from pytest_aegis.app.runtime import AppLaunch, AppRuntime
from pytest_aegis.errors import SpecError
from pytest_aegis.process import ManagedProcess


def local_launcher(launch: AppLaunch) -> AppRuntime:
    """The service as a child process of pytest (every backend's default)."""
    if not launch.spec.command:
        image = launch.spec.image
        only = f" (it names only image={image!r}, for the docker backend)" if image else ""
        raise SpecError(
            f"app {launch.spec.name!r} has no command to run as a local process{only}; give its "
            "AppSpec a command (or its aegis_apps line command=...)"
        )
    return ManagedProcess(
        launch.name,
        launch.spec.command,
        ready=launch.ready,
        log_path=launch.log_path,
        session=launch.session,
        env={**os.environ, **coverage.subprocess_env(), **launch.env},
        cwd=launch.spec.cwd,
        die_with_parent=not launch.keep,
        hint=f"command: {shlex.join(launch.spec.command)}; the app's environment is in AppProcess.env",
    )
