"""A nats-server's lame-duck mode, as its operators use it for rolling restarts: SIGUSR2 (what
``nats-server --signal ldm`` sends) makes the server stop accepting clients, hand its Raft
leaderships (JetStream's meta group, streams, consumers) to other nodes, tell its clients and
routes to go elsewhere, wait ``lame_duck_grace_period``, close its clients spread over what is
left of ``lame_duck_duration``, and exit.

:func:`enter_lame_duck` signals and returns once the server logged that it entered the mode;
:func:`wait_until_exited` waits for the exit, with a deadline from the spec's two settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_aegis.errors import LameDuckError, WaitTimeout
from pytest_aegis.natsd.reload import lines_since
from pytest_aegis.natsd.spec import LAME_DUCK_DEFAULTS, NatsSpec
from pytest_aegis.waiting import wait_until

if TYPE_CHECKING:
    from pytest_aegis.natsd.server import NatsServer

#: What nats-server logs as it enters lame-duck mode.
ENTERING = "Entering lame duck mode"
#: Seconds a server may take to log :data:`ENTERING` after the signal.
LAME_DUCK_TIMEOUT = 10.0
#: Seconds on top of the lame-duck duration for the server to exit: the leadership transfer it
#: waits a second for, its shutdown, a busy machine.
EXIT_MARGIN = 15.0


def exit_deadline(spec: NatsSpec) -> float:
    """Seconds a server of ``spec`` may take from entering lame-duck mode to its exit."""
    duration = LAME_DUCK_DEFAULTS[0] if spec.lame_duck_duration is None else spec.lame_duck_duration
    return duration + EXIT_MARGIN


def enter_lame_duck(server: NatsServer, *, timeout: float = LAME_DUCK_TIMEOUT) -> list[str]:
    """Signal ``server`` into lame-duck mode; its log lines from the signal to :data:`ENTERING`."""
    if not server.is_running or server.is_paused:
        why = "it is paused (resume() it first)" if server.is_running else "it is not running"
        raise LameDuckError(f"{server.name}: cannot enter lame-duck mode: {why}")
    offset = server.log_size()
    server.runtime.signal("SIGUSR2")  # the external backend refuses here
    try:
        lines = wait_until(
            lambda: lines_since(server, offset),
            f"{server.name} to log {ENTERING!r}",
            timeout=timeout,
            ok=lambda seen: any(ENTERING in line for line in seen),
            max_interval=0.05,
        )
    except WaitTimeout as exc:
        state = "still running" if server.is_running else "exited"
        raise LameDuckError(
            f"{server.name} did not log {ENTERING!r} within {timeout:g}s of SIGUSR2 (it is {state})\n"
            f"{exc}\n{_tail(server)}"
        ) from None
    return lines


def _tail(server: NatsServer, count: int = 15) -> str:
    """The server's last log lines (all its starts), for an error."""
    return f"its last {count} log lines:\n" + "\n".join(server.logs().splitlines()[-count:])


def wait_until_exited(server: NatsServer, *, timeout: float | None = None) -> None:
    """Until ``server``, in lame-duck mode, has exited; ``timeout`` defaults to
    :func:`exit_deadline` of its spec."""
    limit = exit_deadline(server.spec) if timeout is None else timeout
    try:
        wait_until(
            lambda: not server.is_running,
            f"{server.name} to exit after lame-duck mode",
            timeout=limit,
            max_interval=0.1,
            hint="it exits after lame_duck_duration (the spec's keyword; nats-server's default: 2 min)",
        )
    except WaitTimeout as exc:
        raise LameDuckError(f"{exc}\n{_tail(server)}") from None
