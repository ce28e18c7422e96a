"""Domain errors (mapped to HTTP status codes in :mod:`aegis_service.adapters.http.errors`) and how any
error reads in one log line."""

from __future__ import annotations

import ssl


class ServiceError(Exception):
    """Base class; ``code`` is the machine-readable error code in HTTP error bodies."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class Unavailable(ServiceError):
    """A dependency cannot serve the request right now (NATS disconnected, timeout, circuit open,
    database unreachable)."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CorruptEntry(ServiceError):
    """A stored value could not be decoded."""

    code = "internal_error"


class RevisionMismatch(Exception):
    """A write conditional on a revision found another one (or no entry, or, for a create, an entry).

    Raised by the stores; the use cases turn it into :class:`Conflict` or :class:`NotFound`."""


def _first_line_of(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def first_line(exc: BaseException) -> str:
    """The first line of the message, or the type's name when there is none."""
    return _first_line_of(exc) or type(exc).__name__


def describe_error(exc: BaseException | None) -> str:
    """``Type: first line of the message`` (a failed certificate check says why)."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc.reason}"
    text = _first_line_of(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
