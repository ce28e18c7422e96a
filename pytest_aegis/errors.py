"""Every error the harness raises that a test or a conftest may catch, in one place.

Each message says what was wrong, the setting or value the user actually gave, and how to fix it.
All are importable from :mod:`pytest_aegis`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

#: Log-line markers of a fatal start error, for processes that do not name their own.
FATAL_MARKERS = ("[FTL]", "[ERR]", "FATAL", "PANIC", "Error", "error:", "panic:")

ConnectReason = Literal["tls", "auth", "protocol", "reset", "unreachable", "timeout"]


class AegisError(Exception):
    """Base of the harness's own errors."""


class ConfigError(AegisError, ValueError):
    """A setting with a bad value; the message names the flag, ini key and env variable, the value
    and the valid values.  The plugin reports it as ``pytest.UsageError``."""


class SpecError(AegisError, ValueError):
    """A server spec (``@pytest.mark.nats_secure`` keywords, a factory's) that cannot be built; the
    message names the keyword, what was wrong and the valid values."""


class BackendUnavailable(AegisError, RuntimeError):
    """The backend cannot run here; the message says what is missing and how to get it."""


class BackendMisconfigured(BackendUnavailable):
    """A setting given for the backend is wrong (a binary path that is not one, a URL that is not
    a URL); the message names the setting as the user set it (flag, ini key or env variable).  The
    plugin reports it as ``pytest.UsageError`` when the session starts, and ``auto`` does not fall
    back to another backend past it."""


class ExternalServerError(AegisError, RuntimeError):
    """An operation that needs control of a server the external backend only connects to."""


class MigrationError(AegisError, RuntimeError):
    """Migrations could not be found or applied; the message names the file (or function) and the error."""


class WaitTimeout(AegisError, AssertionError):
    """A condition did not hold before the deadline.

    An ``AssertionError`` so pytest shows it as a test failure, with the last value or error
    observed and a hint.
    """


class ServerStartError(AegisError, RuntimeError):
    """A server (or the service under test) did not become ready: it exited, or the timeout passed.

    ``reason`` says what happened and ``exit_code`` how it ended (``None`` while it runs or when
    unknown; negative: killed by that signal).  For the service under test, ``refusal`` is set
    when its own log or ``server_lines`` (the NATS server's log meanwhile, without the lines about
    the harness's own probe connection) show that the server refused *it*: ``"tls"``, ``"auth"``
    or ``"permissions"``.  ``probe_error`` is the :class:`NatsConnectError` of the harness's
    health probe when that failed too; ``log`` the process's whole log when it is known.
    """

    def __init__(
        self,
        name: str,
        reason: str,
        log_tail: Sequence[str],
        hint: str | None = None,
        fatal_markers: Sequence[str] = FATAL_MARKERS,
        *,
        refusal: str | None = None,
        server_lines: Sequence[str] = (),
        exit_code: int | None = None,
        log: str | None = None,
        probe_error: NatsConnectError | None = None,
        server: object = None,
    ) -> None:
        fatal = [line for line in log_tail if any(marker in line for marker in fatal_markers)]
        parts = [f"{name} did not start: {reason}"]
        if refusal is not None:
            parts[0] += f" (refused: {refusal})"
        if fatal:
            parts += ["fatal lines:", *(f"  {line}" for line in fatal[-10:])]
        parts += [f"last {len(log_tail)} log lines:", *(f"  {line}" for line in log_tail)]
        if server_lines:
            parts += ["the server's log meanwhile:", *(f"  {line}" for line in server_lines[-20:])]
        if hint:
            parts.append(f"hint: {hint}")
        super().__init__("\n".join(parts))
        self.name = name
        self.reason = reason
        self.log_tail = list(log_tail)
        self.hint = hint
        self.fatal_lines = fatal
        self.refusal = refusal
        self.server_lines = list(server_lines)
        self.exit_code = exit_code
        self.log = log
        self.probe_error = probe_error
        #: For the service under test: the NATS server (a ``NatsServer``) it was wired to.
        self.server = server


class LameDuckError(AegisError, RuntimeError):
    """A NATS server did not enter lame-duck mode after SIGUSR2 (it was not running, was paused,
    or logged nothing in time), or did not exit within its lame-duck duration after it."""


class PeerRemovalError(AegisError, RuntimeError):
    """JetStream refused to remove a node's peer from its cluster (the message has its error:
    not a member, no meta leader, ...), or the meta group still listed the node after the
    deadline."""


class NatsReloadError(AegisError, RuntimeError):
    """A NATS server did not reload its changed config: it logged why (``server_lines``, its log
    from the signal on), exited, or logged nothing before the deadline.  The handle and the
    config on disk are as they were before the reload; the server runs on its old config."""

    def __init__(self, name: str, reason: str, server_lines: Sequence[str]) -> None:
        self.name = name
        self.reason = reason
        self.server_lines = list(server_lines)
        parts = [f"{name} did not reload its config: {reason}"]
        if server_lines:
            parts += ["server log since the reload signal:", *(f"  {line}" for line in server_lines[-20:])]
        super().__init__("\n".join(parts))


class ProxyError(AegisError, RuntimeError):
    """A fault proxy could not do what was asked: listen on its port again after ``refuse()`` (a
    program outside the harness bound it meanwhile), or reach its loop."""


class PortRangeError(AegisError, RuntimeError):
    """No port could be leased for a server or proxy: every candidate of the leased range was
    leased by other sessions or in use; the message names the range and ``AEGIS_PORT_RANGE``."""


class PlaintextRejected(AegisError, ConnectionError):
    """A plaintext client was turned away by a server that requires TLS."""


class TLSRejectedByServer(AegisError, ConnectionError):
    """The server aborted the TLS handshake; the message carries its logged reason.

    With TLS 1.3 the client finishes its half of the handshake before the server checks the
    client certificate, so a rejected client sometimes sees only a reset.  The server's own log
    line then says why.
    """


_CONNECT_HINTS: Mapping[str, str] = {
    "tls": "the client does not trust the server's certificate, or the handshake failed: check the "
    "server_cert kind and the client's TLS context (connect_kwargs(tls=...))",
    "auth": "the server refused the credentials: check user/password, token, nkey seed or creds",
    "protocol": "the server sent an error during the handshake: see its log lines above",
    "reset": "the server closed the connection without a reason: see its log lines above",
    "unreachable": "nothing accepts connections there: is the server running, on that port?",
    "timeout": "is the server running and listening on that port? its log lines are above",
}


def describe_error(error: BaseException | None) -> str:
    """``module.Type: message`` (``"no error"`` for ``None``)."""
    return "no error" if error is None else f"{type(error).__module__}.{type(error).__qualname__}: {error}"


class NatsConnectError(AegisError, ConnectionError):
    """The harness could not connect to a NATS server within its deadline.

    ``reason`` is ``"tls"`` (certificate verification or handshake failure, also when the server
    logged it and the client saw only a reset), ``"auth"`` (bad or missing credentials),
    ``"protocol"`` (another error the server sent), ``"reset"`` (the server dropped the connection
    without saying why), ``"unreachable"`` (nothing listens there) or ``"timeout"`` (nothing settled
    it before the deadline).  ``cause`` is the error that shows the reason (``None`` on a bare
    timeout), ``errors`` every error seen, and ``server_lines`` the server's log lines written
    during the attempt.
    """

    def __init__(
        self,
        target: str,
        reason: ConnectReason,
        *,
        timeout: float,
        cause: BaseException | None,
        errors: Sequence[BaseException],
        server_lines: Sequence[str],
        local_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.target = target
        #: The client's local ports in the attempt (the server's log lines about it name them).
        self.local_ports = local_ports
        self.reason: ConnectReason = reason
        self.cause = cause
        self.errors = list(errors)
        self.server_lines = list(server_lines)
        seen = describe_error(cause) if cause is not None else "no error reported"
        parts = [f"could not connect to {target} ({reason}): {seen}"]
        if reason == "timeout":
            parts[0] = f"could not connect to {target} within {timeout:g}s (timeout); last error: {seen}"
        if server_lines:
            parts += ["server log during the attempt:", *(f"  {line}" for line in server_lines[-20:])]
        parts.append(f"hint: {_CONNECT_HINTS[reason]}")
        super().__init__("\n".join(parts))
