"""One soak run: a command in a process group of its own, its output into a log, under a deadline."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.soak.children import die_with_parent, signal_group, stop_group

#: How long a run that passed its deadline (or was interrupted) has to tear down before SIGKILL.
GRACE_S = 30.0
SWEEP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Finished:
    exit_code: int
    duration_s: float
    timed_out: bool
    strays: bool  # processes of its group outlived it (then killed)


def run_logged(
    argv: Sequence[str], env: Mapping[str, str], log: Path, timeout: float, grace: float = GRACE_S
) -> Finished:
    """Run ``argv`` with stdout and stderr into ``log``; past ``timeout`` seconds its whole process
    group is stopped (:func:`~bench.soak.children.stop_group`).  Nothing of the group survives the
    call: members left after it exits are killed too, and on an exception (Ctrl-C, SIGTERM) the
    group is stopped before it propagates."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        timed_out = False
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            code = stop_group(proc, grace)
        except BaseException:
            stop_group(proc, grace)
            raise
    strays = signal_group(proc.pid, 0) and signal_group(proc.pid, signal.SIGKILL)
    return Finished(code, time.monotonic() - started, timed_out, strays)


def sweep(python: str, env: Mapping[str, str], log: Path) -> None:
    """``python -m pytest_aegis sweep``, appended to ``log``: what a killed run left (containers)."""
    with log.open("ab") as out:
        out.write(b"\n== soak: python -m pytest_aegis sweep\n")
        out.flush()
        try:
            subprocess.run(
                [python, "-m", "pytest_aegis", "sweep"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                timeout=SWEEP_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out.write(b"== soak: the sweep did not finish in time\n")


def tail(log: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``log`` (decoded leniently)."""
    with log.open("rb") as source:
        last = deque(source, maxlen=lines)
    return [line.decode(errors="replace").rstrip("\n") for line in last]
