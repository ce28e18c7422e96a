"""A child process whose readiness comes from its own output.

:class:`ManagedProcess` starts a server, drains its merged stdout/stderr on a
background thread into a log file (so the pipe never fills and the log is
there for failure reports), and returns from :meth:`ManagedProcess.start` the
moment the caller's ``ready`` predicate matches a line: no sleeps, no polling.
If the process exits first, or the timeout passes, the error carries the
process's fatal lines, its last log lines and a hint.

On Linux every child gets ``PR_SET_PDEATHSIG(SIGKILL)``: when pytest dies,
however it dies, the kernel kills its servers.  Note the kernel ties this to
the *thread* that started the child, so start servers from long-lived threads
(pytest's main thread, as fixtures do).  Children are also registered in the
:class:`~pytest_aegis.session.SessionState` for the next session's sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Generic, Protocol, TypeVar

from pytest_aegis.errors import FATAL_MARKERS, ServerStartError
from pytest_aegis.pausing import continue_all, stop_tree
from pytest_aegis.session import SessionState

_PR_SET_PDEATHSIG = 1


_SETPRIV = shutil.which("setpriv")


def _die_with_parent(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """Arrange ``PR_SET_PDEATHSIG(SIGKILL)`` for a child.

    util-linux's ``setpriv --pdeathsig`` sets it and execs the server (the
    setting survives exec), which lets Python spawn with vfork; a
    ``preexec_fn`` would force a full fork of the pytest process, ~5-8 ms
    per server.  The ``preexec_fn`` remains the fallback without setpriv.
    """
    if _SETPRIV:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv], None
    return argv, _die_with_parent_preexec(os.getpid())


def _die_with_parent_preexec(parent_pid: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class ManagedProcess:
    """One child process with a log and readiness from its output.

    ``ready(line)`` is called for each output line until it returns ``True``;
    the lines seen up to then are in :attr:`startup_lines` for the caller to
    parse (ports, version).  ``ready=None``: ready as soon as it is spawned
    (the caller probes readiness itself).  ``die_with_parent=False`` is for ``--aegis-keep``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Callable[[str], bool] | None,
        log_path: Path,
        session: SessionState | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
        hint: str | None = None,
        user: int | None = None,
        group: int | None = None,
        fatal_markers: Sequence[str] = FATAL_MARKERS,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._ready_predicate = ready
        self._session = session
        self._env = env
        self._cwd = cwd
        self._die_with_parent = die_with_parent and sys.platform == "linux"
        self._hint = hint
        self._user, self._group = user, group
        self._fatal_markers = tuple(fatal_markers)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._tail: list[str] = []
        self._ready_seen = False
        self._stopped: set[int] = set()  # what pause() stopped: the process and its children
        self.startup_lines: list[str] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Spawn and block until ready; raise :class:`ServerStartError` otherwise."""
        self._ready.clear()
        self._ready_seen = False
        self._stopped = set()
        self.startup_lines = []
        self._tail = []
        log = open(self.log_path, "ab")
        argv, preexec = _die_with_parent(self.argv) if self._die_with_parent else (self.argv, None)
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,  # Ctrl-C goes to pytest, which tears down in order
                preexec_fn=preexec,
                user=self._user,
                group=self._group,
            )
        except OSError as exc:
            log.close()
            raise self._error(f"could not execute {self.argv[0]}: {exc}") from exc
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._drain, args=(self._proc.stdout, log), name=f"aegis-log-{self.name}", daemon=True
        )
        self._reader.start()
        if self._ready_predicate is None:
            self._register()
            return
        if not self._ready.wait(timeout):
            self.kill()
            raise self._error(f"not ready after {timeout:.1f}s")
        if not self._ready_seen:  # the reader hit EOF: the process exited
            code = self._reap()
            raise self._error(f"exited with code {code} before it was ready", exit_code=code)
        self._register()

    def _register(self) -> None:
        # After readiness, not right after spawning: reading /proc/<pid>/stat of a
        # process still inside execve() blocks for ~1 ms on the server's start path.
        # Until here PR_SET_PDEATHSIG alone ties the child to pytest.
        if self._session is not None and self._proc is not None:
            self._session.register_process(self._proc.pid, self.name)

    def _error(self, reason: str, *, exit_code: int | None = None) -> ServerStartError:
        return ServerStartError(
            self.name, reason, self.tail(40), self._hint, self._fatal_markers, exit_code=exit_code
        )

    def _drain(self, stream: IO[bytes], log: IO[bytes]) -> None:
        with log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()  # logs() reads the file: never leave lines in a buffer
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self._tail.append(line)
                    if len(self._tail) > 400:
                        del self._tail[:200]
                if not self._ready.is_set() and self._ready_predicate is not None:
                    self.startup_lines.append(line)
                    if self._ready_predicate(line):
                        self._ready_seen = True
                        self._ready.set()
        stream.close()
        self._ready.set()  # EOF: the process is gone; wake start() to report it

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL.  Returns the exit code.  A paused
        process is resumed first (a stopped process handles no SIGTERM)."""
        if self._proc is None:
            return None
        self.resume()
        terminate(self._proc, timeout)
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: no graceful shutdown.  When paused, the process dies
        without running again, and its children are continued so they can notice and exit."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        self.resume()  # before the reap: the pid cannot be reused while it is a zombie
        return self._reap()

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the running process (:class:`RuntimeError` when it is not running)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running: nothing to signal")
        proc.send_signal(sig)

    # -- pausing -------------------------------------------------------------

    @property
    def is_paused(self) -> bool:
        return bool(self._stopped) and self.is_running

    def pause(self) -> None:
        """SIGSTOP the process and every process it forked; return once all have stopped."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running: nothing to pause")
        stop_tree(proc.pid, self._stopped)

    def resume(self) -> None:
        """SIGCONT what :meth:`pause` stopped (nothing when not paused)."""
        stopped, self._stopped = self._stopped, set()
        continue_all(stopped)

    def _reap(self) -> int | None:
        proc = self._proc
        assert proc is not None
        code = proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._session is not None:
            self._session.unregister_process(proc.pid)
        return code

    # -- inspection --------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def tail(self, lines: int = 50) -> list[str]:
        with self._lock:
            return self._tail[-lines:]

    def logs(self) -> str:
        """The whole log of this process (all its starts), as text."""
        return read_log(self.log_path)

    def log_size(self) -> int:
        return log_file_size(self.log_path)


def read_log(path: Path) -> str:
    """A log file's text (undecodable bytes replaced); ``""`` before anything was written."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def log_file_size(path: Path) -> int:
    """A log file's size in bytes (0 before anything was written): where a test's section starts."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class Runs(Protocol):
    """What :class:`ProcessBacked` reads from the thing that runs: a process or a container."""

    @property
    def pid(self) -> int | None: ...
    @property
    def is_running(self) -> bool: ...
    @property
    def log_path(self) -> Path: ...
    def logs(self) -> str: ...
    def log_size(self) -> int: ...


R = TypeVar("R", bound=Runs)


class ProcessBacked(Generic[R]):
    """Mixin for handles whose lifetime is one process or container (``self._process``)."""

    _process: R

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def is_running(self) -> bool:
        return self._process.is_running

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    def logs(self) -> str:
        """The process's whole log (all its starts)."""
        return self._process.logs()

    def log_size(self) -> int:
        return self._process.log_size()
