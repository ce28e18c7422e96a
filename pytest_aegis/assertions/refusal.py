"""The service under test must refuse to start: :func:`assert_app_refuses_to_start`.

"The service exits when its credentials are wrong" is only proved when it exits *because the
server refused it*, for the reason the test names.  The verdict reads both sides: the service's
own log (``Authorization Violation``, ``certificate verify failed``, ``permissions violation``)
and the NATS server's log lines of the attempt, so an mTLS refusal that reached the service as
a bare ``Connection lost`` is still classified ``tls`` by the server's ``client didn't provide a
certificate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_aegis.errors import ServerStartError
from pytest_aegis.matrix import record
from pytest_aegis.natsd.server import NatsServer

RefusalReason = Literal["auth", "tls", "permissions"]
REFUSALS: dict[str, str] = {
    "auth": "the server rejected its credentials (authorization violation, expired or foreign identity)",
    "tls": "the TLS handshake failed (untrusted server certificate, client certificate missing or foreign)",
    "permissions": "the server denied a subscription or publish it needs (permissions violation)",
}


@dataclass(frozen=True)
class AppRefusal:
    """Why the service under test did not start, as :func:`assert_app_refuses_to_start` proved it."""

    #: ``"auth"``, ``"tls"`` or ``"permissions"``.
    reason: str
    #: How the process ended (negative: the harness killed it, e.g. after it never became healthy).
    exit_code: int | None
    #: The service's whole log (stdout and stderr).
    app_log: str
    #: The NATS server's log lines written during the attempt.
    server_lines: list[str] = field(default_factory=list)
    #: The start failure itself.
    error: ServerStartError | None = None


def _wanted(reason: RefusalReason | tuple[RefusalReason, ...]) -> tuple[str, ...]:
    wanted = (reason,) if isinstance(reason, str) else tuple(reason)
    if not wanted or any(r not in REFUSALS for r in wanted):
        raise ValueError(f"reason must be one of {', '.join(REFUSALS)} (or a tuple of them); got {reason!r}")
    return wanted


def assert_app_refuses_to_start(
    aegis_app_factory: Callable[..., Any],
    *,
    reason: RefusalReason | tuple[RefusalReason, ...],
    match: str | None = None,
    within: float | None = None,
    **factory_kwargs: Any,
) -> AppRefusal:
    """Start the service under test with ``aegis_app_factory(**factory_kwargs)`` and assert that it
    exits (or never becomes healthy, within ``within`` seconds if given) because the NATS server
    refused it for ``reason`` (``"auth"``, ``"tls"``, ``"permissions"``, or a tuple of them).
    ``match`` is a regex that the service's log or the server's lines must contain.

    Returns the :class:`AppRefusal`.  Raises ``AssertionError`` saying what happened instead if
    the service started and answered its health check, or failed for another reason::

        refusal = assert_app_refuses_to_start(aegis_app_factory, reason="auth",
                                              env={"AEGIS_NATS_PASSWORD": "wrong"})
        assert refusal.exit_code == 1
    """
    wanted = _wanted(reason)
    expected = " or ".join(f"{r!r} ({REFUSALS[r]})" for r in wanted)
    if within is not None:
        factory_kwargs["start_timeout"] = within
    try:
        app = aegis_app_factory(**factory_kwargs)
    except ServerStartError as exc:
        return _judge(exc, wanted, expected, match)
    raise AssertionError(
        f"expected the service under test to refuse to start for reason {expected}, but {app.name} "
        f"started and answered its health check on {app.spec.health_subject}; its log:\n{_last(app.logs())}"
    )


def _judge(error: ServerStartError, wanted: tuple[str, ...], expected: str, match: str | None) -> AppRefusal:
    log = error.log if error.log is not None else "\n".join(error.log_tail)
    if error.refusal is None:
        probe = f"; the harness's probe: {error.probe_error.reason}" if error.probe_error else ""
        raise AssertionError(
            f"expected the service under test to refuse to start for reason {expected}, but it failed "
            f"for another reason (no refusal in its log or the server's){probe}:\n{error}"
        )
    if error.refusal not in wanted:
        raise AssertionError(
            f"expected the service under test to refuse to start for reason {expected}, but the server "
            f"refused it for reason {error.refusal!r}:\n{error}"
        )
    evidence = "\n".join([log, *error.server_lines])
    if match is not None and not re.search(match, evidence, re.I):
        raise AssertionError(
            f"the service under test was refused for reason {error.refusal!r} as expected, but neither "
            f"its log nor the server's lines match {match!r}:\n{error}"
        )
    if isinstance(error.server, NatsServer):
        record.app_refused(error.server.spec, error.refusal, error.server.topology)
    return AppRefusal(error.refusal, error.exit_code, log, list(error.server_lines), error)


def _last(text: str, lines: int = 30) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])
