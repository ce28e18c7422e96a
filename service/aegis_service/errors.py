"""Domain errors shared by the KV layer and the HTTP API (mapped to status codes in ``registry_api``)."""

from __future__ import annotations


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
    """NATS / JetStream cannot serve the request right now (disconnected, timeout, circuit open)."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CorruptEntry(ServiceError):
    """A stored value could not be decoded."""

    code = "internal_error"
