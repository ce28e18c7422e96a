"""Process helpers shared by the bench suites' bare reference contenders."""

from __future__ import annotations

import contextlib
import subprocess

STOP_TIMEOUT = 10.0


def terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM and wait (SIGKILL after ``timeout``); close its pipes."""
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
