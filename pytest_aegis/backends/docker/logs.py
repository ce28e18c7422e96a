"""The output of one start of a container, followed on a thread (:class:`LogFollower`): copied to
the log file as it comes, kept as lines for :meth:`LogFollower.wait_line`, with its end noted (the
container's main process exited)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class LogFollower:
    """Drains one start's output stream (docker's multiplexed stdout+stderr) on a thread: appends
    it to the log file, keeps this start's lines for :meth:`wait_line`, notes the end of stream
    (the container's main process exited)."""

    def __init__(self, stream: Iterator[bytes], log_path: Path, name: str) -> None:
        self.lines: list[str] = []
        self.eof = False
        self._log_path = log_path
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._drain, args=(stream, log_path), name=f"aegis-log-{name}", daemon=True
        )
        self._thread.start()

    def _drain(self, stream: Iterator[bytes], log_path: Path) -> None:
        pending = b""
        try:
            with open(log_path, "ab") as log:
                for chunk in stream:
                    log.write(chunk)
                    log.flush()  # logs() reads the file: never leave lines in a buffer
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    if complete:
                        self._add([raw.decode("utf-8", "replace").rstrip("\r") for raw in complete])
        except Exception:  # the engine closed the stream abruptly: same as its end
            pass
        finally:
            if pending:
                self._add([pending.decode("utf-8", "replace")])
            with self._cond:
                self.eof = True
                self._cond.notify_all()
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[attr-defined]

    def _add(self, lines: list[str]) -> None:
        with self._cond:
            self.lines += lines
            self._cond.notify_all()

    def wait_line(self, predicate: Callable[[str], bool], start: int, deadline: float) -> int | None:
        """Index of the first line at or after ``start`` that matches; ``None`` if the stream ended
        first; raise :class:`TimeoutError` at ``deadline`` (a :func:`time.monotonic` time)."""
        index = start
        with self._cond:
            while True:
                while index < len(self.lines):
                    if predicate(self.lines[index]):
                        return index
                    index += 1
                if self.eof:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._cond.wait(remaining)

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def catch_up(self, lines: list[str]) -> None:
        """After the stream ended: take the lines of ``lines`` (the engine's whole log of this run)
        past those the stream gave.  A container that exits at once can end its followed stream
        before the engine has copied its last lines into the log."""
        with self._cond:
            if not self.eof or len(lines) <= len(self.lines):
                return
            missing = lines[len(self.lines) :]
            self.lines.extend(missing)
            with open(self._log_path, "ab") as log:
                log.write("".join(f"{line}\n" for line in missing).encode())
            self._cond.notify_all()

    def tail(self, count: int) -> list[str]:
        with self._cond:
            return self.lines[-count:]
