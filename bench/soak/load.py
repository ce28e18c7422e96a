"""Busy cores while the suite runs: busy-loop Python processes, started and killed by the soak."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from bench.soak.children import die_with_parent

BURN = "while True: pass"


@contextlib.contextmanager
def cpu_burners(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning a core each for the ``with`` block; yields their pids.

    Each is in a session of its own (Ctrl-C in the terminal is the soak's to handle) and dies with
    the soak (``PR_SET_PDEATHSIG``); leaving the block, however it is left, kills them all.
    """
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", BURN],
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent(),
                )
            )
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
