"""Children of the soak that die with it, and process groups stopped as Ctrl-C would."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the soak dies, however it dies
    (Linux; ``None`` elsewhere).  Spawn from the main thread: the kernel ties it to the thread."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the soak died before prctl took effect
            os._exit(1)

    return preexec


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; whether any process was in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies or a reused id: nothing of ours to stop
        return False
    return True


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> int:
    """Stop ``proc`` and its process group (it leads one: ``start_new_session``): SIGINT to every
    member, as Ctrl-C in a terminal (pytest tears its servers and containers down), then SIGKILL
    to whatever is left after ``grace`` seconds.  Returns ``proc``'s exit code."""
    try:
        signal_group(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    finally:
        signal_group(proc.pid, signal.SIGKILL)
    return proc.wait()
