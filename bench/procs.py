"""Process helpers shared by the bench suites' bare reference contenders."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pytest_aegis.process import terminate as stop

STOP_TIMEOUT = 10.0


def terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM and wait (SIGKILL after ``timeout``); close its pipes."""
    try:
        stop(proc, timeout)
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


class BenchError(RuntimeError):
    """A bench contender could not be set up; the message carries its output."""


def read_until(
    proc: subprocess.Popen[bytes],
    stream: IO[bytes],
    done: Callable[[bytes], bool],
    timeout: float,
    what: str,
    context: Callable[[list[bytes]], str],
) -> list[bytes]:
    """Read ``stream`` line by line until ``done(line)``; return the lines read.

    Raises :class:`BenchError` with ``context(lines)`` if ``timeout`` passes or
    the process exits first.
    """
    fd = stream.fileno()
    deadline = time.perf_counter() + timeout
    pending = b""
    lines: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or not selector.select(remaining):
                raise BenchError(f"{what} not ready after {timeout:.1f}s:\n{context(lines)}")
            chunk = os.read(fd, 65536)
            if not chunk:
                code = proc.wait()
                raise BenchError(f"{what} exited with code {code} before ready:\n{context(lines)}")
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                lines.append(line)
                if done(line):
                    return lines


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` so far (Linux ``/proc``), ``None`` if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
