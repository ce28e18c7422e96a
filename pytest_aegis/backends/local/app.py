"""The service under test as a child process of pytest (every backend's default launcher)."""

from __future__ import annotations

import os
import shlex

from pytest_aegis.app import coverage
from pytest_aegis.app.runtime import AppLaunch, AppRuntime
from pytest_aegis.process import ManagedProcess


def local_launcher(launch: AppLaunch) -> AppRuntime:
    """The service as a child process of pytest (every backend's default)."""
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
